package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/ca"
)

// ALPN protocol names.
const (
	// ProtoRaft carries raft traffic. Both ends must be managers.
	ProtoRaft = "holdfast-raft/1"
	// ProtoAPI carries the node-to-node API. The client may be a manager or
	// a worker; the server is a manager.
	ProtoAPI = "holdfast-api/1"
	// ProtoJoin carries join requests. No client certificate is asked for.
	ProtoJoin = "holdfast-join/1"

	// DefaultHandshakeTimeout is used when Config.HandshakeTimeout is zero.
	DefaultHandshakeTimeout = 5 * time.Second
)

// Sentinel errors.
var (
	// ErrCAMismatch means the join server's certificate chain does not
	// contain the CA pinned by the join token, or its certificate does not
	// verify against that CA as a manager.
	ErrCAMismatch = errors.New("server's CA does not match the join token")
	// ErrNoCredentials means the CredStore holds no usable credentials.
	ErrNoCredentials = errors.New("no TLS credentials")
	// ErrPeerRefused means the peer's certificate was missing, did not
	// verify, belongs to another cluster, has a role the protocol does not
	// allow, or was refused by Config.Authorize.
	ErrPeerRefused = errors.New("peer refused")
	// ErrProtocol means the peers did not agree on a holdfast protocol.
	ErrProtocol = errors.New("no holdfast protocol negotiated")
	// ErrCertTime means a peer's certificate is not valid at this node's
	// clock: not yet, or no longer. With a fresh certificate that is a
	// clock off on one side; the error says by how much.
	ErrCertTime = errors.New("peer certificate outside its validity at this node's clock")
)

// Config configures a Mux and the dialers.
type Config struct {
	// Creds holds the node's current TLS material. Required.
	Creds *CredStore
	// Authorize is called for every authenticated peer, accepting and
	// dialing, with the protocol, after the chain, cluster and role
	// checks; on raft it is called again for every RPC received, and
	// ConnTracker.Revalidate calls it for every open connection. A non-nil
	// error refuses the connection (e.g. a removed or demoted node, an
	// unknown one). nil allows all.
	Authorize AuthorizeFunc
	// Conns, if set, tracks every open authenticated connection so that
	// Conns.Revalidate can close those whose peer is no longer allowed.
	Conns *ConnTracker
	// HandshakeTimeout bounds each handshake, and how long a handshaken
	// connection waits to be accepted. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Logger receives rejections at debug level (a certificate outside
	// its dates, at warn: see ErrCertTime). nil discards.
	Logger *slog.Logger
	// Now is the node's wall clock, against which peers' certificates
	// are checked; nil means time.Now.
	Now func() time.Time
	// Limits bound what peers may hold of the Mux (limits.go); zero
	// fields take the defaults.
	Limits Limits
	// OnLimit, if set, is called each time a limit refuses a peer or a
	// deadline ends its connection, with the limit's name (LimitNames).
	OnLimit func(limit string)
	// Refuse answers a request refused by a limit; nil answers a plain
	// 429 with Retry-After.
	Refuse RefuseFunc
}

// onLimit calls OnLimit if set.
func (c Config) onLimit(limit string) {
	if c.OnLimit != nil {
		c.OnLimit(limit)
	}
}

// AuthorizeFunc decides whether the peer whose verified certificate is leaf
// (identity id) may use proto now.
type AuthorizeFunc func(proto string, id ca.Identity, leaf *x509.Certificate) error

// DefaultConfig returns a Config using creds and the defaults.
func DefaultConfig(creds *CredStore) Config {
	return Config{Creds: creds, HandshakeTimeout: DefaultHandshakeTimeout}
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.Creds == nil {
		return errors.New("transport config: Creds is required")
	}
	if c.HandshakeTimeout < 0 {
		return fmt.Errorf("transport config: HandshakeTimeout %v is negative", c.HandshakeTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
