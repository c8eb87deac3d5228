package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"time"
)

// Record is what the cluster remembers of the latest certificate it issued
// a node: enough to tell that certificate from any older one, and nothing
// secret.
type Record struct {
	// Serial is the certificate's serial number, in hex.
	Serial string
	// KeySHA256 is the SHA-256 of its public key (SubjectPublicKeyInfo),
	// in hex.
	KeySHA256 string
	// NotAfter is when it expires.
	NotAfter time.Time
}

// RecordOf returns cert's record.
func RecordOf(cert *x509.Certificate) Record {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return Record{Serial: cert.SerialNumber.Text(16), KeySHA256: hex.EncodeToString(sum[:]), NotAfter: cert.NotAfter.UTC()}
}

// RecordOfPEM returns the record of the first certificate in certPEM.
func RecordOfPEM(certPEM []byte) (Record, error) {
	certs, err := ParseCertPEM(certPEM)
	if err != nil {
		return Record{}, err
	}
	return RecordOf(certs[0]), nil
}
