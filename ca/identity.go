package ca

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"time"
)

// Role is what a node is in the cluster: RoleManager or RoleWorker. It is
// the one role type of holdfast: certificates (as the OU), node records,
// raft commands, node.json and the API carry it, always as these strings.
type Role string

// The roles.
const (
	RoleManager Role = "manager"
	RoleWorker  Role = "worker"
)

// Valid reports whether r is RoleManager or RoleWorker.
func (r Role) Valid() bool { return r == RoleManager || r == RoleWorker }

// The OUs that carry the roles in certificates.
const (
	OUManager = "holdfast-manager"
	OUWorker  = "holdfast-worker"

	// DefaultCertExpiry is the default validity of a node certificate.
	DefaultCertExpiry = 2160 * time.Hour
)

var (
	roleOU = map[Role]string{RoleManager: OUManager, RoleWorker: OUWorker}
	ouRole = map[string]Role{OUManager: RoleManager, OUWorker: RoleWorker}

	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOU = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// Identity is who a certificate says a node is: CN = NodeID, OU = the role's
// OU, O = ClusterID.
type Identity struct {
	NodeID    string
	Role      Role // RoleManager or RoleWorker
	ClusterID string
}

// Validate returns an error wrapping ErrBadIdentity unless NodeID and
// ClusterID are valid IDs and Role is RoleManager or RoleWorker.
func (id Identity) Validate() error {
	switch {
	case !ValidID(id.NodeID):
		return fmt.Errorf("%w: node id is not a valid id", ErrBadIdentity)
	case !ValidID(id.ClusterID):
		return fmt.Errorf("%w: cluster id is not a valid id", ErrBadIdentity)
	case roleOU[id.Role] == "":
		return fmt.Errorf("%w: role %q, want %q or %q", ErrBadIdentity, id.Role, RoleManager, RoleWorker)
	}
	return nil
}

// IsManager reports whether the identity has the manager role.
func (id Identity) IsManager() bool { return id.Role == RoleManager }

// IdentityOf reads a node certificate's subject strictly: exactly one CN (a
// valid ID), exactly one OU (OUManager or OUWorker), exactly one O (a valid
// ID). It does not verify the certificate; see Verify.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrBadIdentity)
	}
	cn, err := onlyValue(cert, oidCN, "CN")
	if err != nil {
		return Identity{}, err
	}
	ou, err := onlyValue(cert, oidOU, "OU")
	if err != nil {
		return Identity{}, err
	}
	o, err := onlyValue(cert, oidO, "O")
	if err != nil {
		return Identity{}, err
	}
	role, ok := ouRole[ou]
	if !ok {
		return Identity{}, fmt.Errorf("%w: OU %q is not a holdfast role", ErrBadIdentity, ou)
	}
	id := Identity{NodeID: cn, Role: role, ClusterID: o}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// onlyValue returns the single string value of attribute oid in the
// certificate's subject.
func onlyValue(cert *x509.Certificate, oid asn1.ObjectIdentifier, name string) (string, error) {
	var vals []string
	for _, atv := range cert.Subject.Names {
		if !atv.Type.Equal(oid) {
			continue
		}
		s, ok := atv.Value.(string)
		if !ok {
			return "", fmt.Errorf("%w: %s is not a string", ErrBadIdentity, name)
		}
		vals = append(vals, s)
	}
	if len(vals) != 1 {
		return "", fmt.Errorf("%w: %d %s values, want exactly 1", ErrBadIdentity, len(vals), name)
	}
	return vals[0], nil
}

// Verify checks that leaf chains to one of roots (through any of
// intermediates), that every certificate in the chain is valid at now, that
// leaf is not a CA and allows both TLS server and client authentication, and
// returns IdentityOf(leaf). It does not check which cluster or role the
// identity has: that is the caller's policy.
func Verify(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time) (Identity, error) {
	id, _, err := VerifyChain(leaf, intermediates, roots, now)
	return id, err
}

// VerifyChain is Verify that also returns the verified chain, leaf first and
// root last.
func VerifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time) (Identity, []*x509.Certificate, error) {
	if leaf == nil {
		return Identity{}, nil, fmt.Errorf("verify: %w: no certificate", ErrUntrusted)
	}
	if roots == nil {
		return Identity{}, nil, fmt.Errorf("verify: %w: no trusted roots", ErrUntrusted)
	}
	if leaf.IsCA {
		return Identity{}, nil, fmt.Errorf("verify: %w: a CA certificate is not a node certificate", ErrUntrusted)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return Identity{}, nil, fmt.Errorf("verify: %w: key usage does not allow digital signatures", ErrUntrusted)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if !slices.Contains(leaf.ExtKeyUsage, u) {
			return Identity{}, nil, fmt.Errorf("verify: %w: certificate lacks TLS server and client usage", ErrUntrusted)
		}
	}
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Identity{}, nil, fmt.Errorf("verify: %w: %w", ErrUntrusted, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, nil, fmt.Errorf("verify: %w", err)
	}
	return id, chains[0], nil
}
