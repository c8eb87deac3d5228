package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// peerPolicy returns whether proto authenticates peers, and whether it
// requires them to be managers.
func peerPolicy(proto string) (authenticated, managerOnly bool) {
	switch proto {
	case ProtoRaft:
		return true, true
	case ProtoAPI:
		return true, false
	default:
		return false, false
	}
}

// verifyPeer checks an authenticated peer's certificate chain against creds:
// chain to creds.Roots, same cluster, manager role if managerOnly, then
// authorize.
func verifyPeer(cs tls.ConnectionState, creds *Credentials, proto string, managerOnly bool, authorize AuthorizeFunc, now time.Time) (ca.Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return ca.Identity{}, fmt.Errorf("%w: no certificate presented", ErrPeerRefused)
	}
	id, err := ca.Verify(cs.PeerCertificates[0], cs.PeerCertificates[1:], creds.Roots, now)
	if err != nil {
		if terr := certTimeError(cs.PeerCertificates, now); terr != nil {
			err = terr
		}
		return ca.Identity{}, fmt.Errorf("%w: %w", ErrPeerRefused, err)
	}
	if id.ClusterID != creds.ID.ClusterID {
		return ca.Identity{}, fmt.Errorf("%w: node %s belongs to cluster %s, not %s", ErrPeerRefused, id.NodeID, id.ClusterID, creds.ID.ClusterID)
	}
	if managerOnly && !id.IsManager() {
		return ca.Identity{}, fmt.Errorf("%w: node %s is a %s, a manager is required", ErrPeerRefused, id.NodeID, id.Role)
	}
	if authorize != nil {
		if err := authorize(proto, id, cs.PeerCertificates[0]); err != nil {
			return ca.Identity{}, fmt.Errorf("%w: node %s not authorized: %w", ErrPeerRefused, id.NodeID, err)
		}
	}
	return id, nil
}

// serverConfig returns the per-connection server config for proto, reading
// creds once so that one handshake sees one consistent snapshot.
func serverConfig(creds *Credentials, proto string, authorize AuthorizeFunc, now func() time.Time) *tls.Config {
	cfg := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{proto},
		SessionTicketsDisabled: true,
		ClientAuth:             tls.NoClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &creds.Cert, nil
		},
	}
	authenticated, managerOnly := peerPolicy(proto)
	if authenticated {
		// The chain is checked in VerifyConnection with ca.Verify: the
		// standard check would want host names and ignore roles.
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != proto {
				return fmt.Errorf("%w: got %q, want %q", ErrProtocol, cs.NegotiatedProtocol, proto)
			}
			_, err := verifyPeer(cs, creds, proto, managerOnly, authorize, now())
			return err
		}
	}
	return cfg
}

// clientConfig returns a client config that offers proto, presents creds and
// requires the server to be a manager of creds' cluster. Host names are not
// checked: nodes are identified by certificate, and VerifyConnection does the
// whole chain check, so InsecureSkipVerify only disables the standard,
// host-name-based one.
func clientConfig(creds *Credentials, proto string, authorize AuthorizeFunc, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{proto},
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &creds.Cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != proto {
				return fmt.Errorf("%w: got %q, want %q", ErrProtocol, cs.NegotiatedProtocol, proto)
			}
			_, err := verifyPeer(cs, creds, proto, true, authorize, now())
			return err
		},
	}
}

// dialProto dials addr with proto as a node of cfg's cluster, bounded by ctx
// and cfg.HandshakeTimeout (or timeout, if positive).
func dialProto(ctx context.Context, cfg Config, addr, proto string, timeout time.Duration) (*tls.Conn, error) {
	cfg = cfg.withDefaults()
	creds, err := cfg.Creds.load()
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", proto, addr, err)
	}
	if timeout <= 0 {
		timeout = cfg.HandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: clientConfig(creds, proto, cfg.Authorize, cfg.Now)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s: %w", proto, addr, err)
	}
	return c.(*tls.Conn), nil
}

// PeerIdentity returns the identity in the peer certificate of a completed
// handshake. It does not verify the certificate: use it on connections from
// a Mux's ProtoRaft or ProtoAPI listener (or http.Request.TLS from a server
// on one), which were verified during the handshake.
func PeerIdentity(cs *tls.ConnectionState) (ca.Identity, bool) {
	if cs == nil || !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return ca.Identity{}, false
	}
	id, err := ca.IdentityOf(cs.PeerCertificates[0])
	if err != nil {
		return ca.Identity{}, false
	}
	return id, true
}

// verifyJoinServer checks a join server's chain against the CA digest from a
// join token and returns the pinned root.
func verifyJoinServer(cs tls.ConnectionState, caDigest string, now time.Time) (*x509.Certificate, error) {
	if cs.NegotiatedProtocol != ProtoJoin {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrProtocol, cs.NegotiatedProtocol, ProtoJoin)
	}
	if len(cs.PeerCertificates) < 2 {
		return nil, fmt.Errorf("%w: server presented no CA certificate", ErrCAMismatch)
	}
	var root *x509.Certificate
	for _, c := range cs.PeerCertificates[1:] {
		if c.IsCA && ca.DigestOf(c.Raw) == caDigest {
			root = c
			break
		}
	}
	if root == nil {
		return nil, ErrCAMismatch
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	id, err := ca.Verify(cs.PeerCertificates[0], cs.PeerCertificates[1:], pool, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCAMismatch, err)
	}
	if !id.IsManager() {
		return nil, fmt.Errorf("%w: server %s is not a manager", ErrCAMismatch, id.NodeID)
	}
	if o := root.Subject.Organization; len(o) != 1 || o[0] != id.ClusterID {
		return nil, fmt.Errorf("%w: server %s is not in the CA's cluster", ErrCAMismatch, id.NodeID)
	}
	return root, nil
}
