package keyfiles

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/atomicfile"
	"github.com/holdfast/holdfast/internal/dirsync"
)

// tmpInfix follows "." and a file's base name in its temporary files
// (atomicfile.TempPrefix): crash recovery finds journals by it.
const tmpInfix = ".tmp-"

// writeFileAtomic writes data to path through atomicfile: write, fsync,
// beforeRename (a failpoint; may be nil), rename, fsync the directory. A
// crash leaves the old file or the new one, never a torn one.
func writeFileAtomic(path string, data []byte, mode fs.FileMode, beforeRename func()) error {
	err := atomicfile.Write(path, mode, atomicfile.Options{BeforeRename: beforeRename}, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error { return dirsync.Sync(dir) }

// The journal (FORMAT.md):
//
//	"HFJRNL" || version(1) = 0x01 || count(1)
//	|| count × (uint8(len(name)) || name || uint32(len(data)) || data)
//	|| SHA-256("holdfast/keyfiles journal v1" || everything before)
const (
	journalMagic   = "HFJRNL"
	journalVersion = 0x01
	journalLabel   = "holdfast/keyfiles journal v1"
)

func journalSum(b []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(journalLabel))
	h.Write(b)
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func marshalJournal(es []entry) []byte {
	var out []byte
	out = append(out, journalMagic...)
	out = append(out, journalVersion, byte(len(es)))
	for _, e := range es {
		out = append(out, byte(len(e.name)))
		out = append(out, e.name...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(e.data)))
		out = append(out, e.data...)
	}
	sum := journalSum(out)
	return append(out, sum[:]...)
}

// ownedNames are the files a journal may name.
var ownedNames = []string{DEKFile, RootFile, CertFile, NodeKeyFile}

func parseJournal(b []byte) ([]entry, error) {
	if len(b) < len(journalMagic)+2+sha256.Size {
		return nil, fmt.Errorf("truncated: %d bytes", len(b))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	want := journalSum(body)
	if subtle.ConstantTimeCompare(sum, want[:]) != 1 {
		return nil, errors.New("checksum mismatch")
	}
	rest, ok := bytes.CutPrefix(body, []byte(journalMagic))
	if !ok || rest[0] != journalVersion {
		return nil, errors.New("not a version 1 journal")
	}
	n := int(rest[1])
	rest = rest[2:]
	var es []entry
	for range n {
		if len(rest) < 1 || len(rest) < 1+int(rest[0])+4 {
			return nil, errors.New("truncated entry")
		}
		name := string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
		size := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(len(rest)) < uint64(size) {
			return nil, errors.New("truncated entry")
		}
		known := false
		for _, o := range ownedNames {
			known = known || name == o
		}
		if !known {
			return nil, fmt.Errorf("names %q, not a key file", name)
		}
		es = append(es, entry{name: name, data: bytes.Clone(rest[:size])})
		rest = rest[size:]
	}
	if len(rest) != 0 || n == 0 {
		return nil, errors.New("trailing bytes or no entry")
	}
	return es, nil
}

// The unwrapped DEK file (autolock off), version 2 (FORMAT.md):
//
//	"HFPLAIN" || version(1) = 0x01 || SHA-256("holdfast/keyfiles plain v1" || body) || body
//
// where body is raftlog's key file. Version 1, the key file alone
// (starting "HFKEYS"), has no checksum; it is still read.
const (
	plainMagic   = "HFPLAIN"
	plainVersion = 0x01
	plainLabel   = "holdfast/keyfiles plain v1"
	legacyMagic  = "HFKEYS"
)

func plainSum(body []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(plainLabel))
	h.Write(body)
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

func framePlainDEK(body []byte) []byte {
	sum := plainSum(body)
	out := make([]byte, 0, len(plainMagic)+1+len(sum)+len(body))
	out = append(out, plainMagic...)
	out = append(out, plainVersion)
	out = append(out, sum[:]...)
	return append(out, body...)
}

// parsePlainDEK returns the raftlog key file inside an unwrapped DEK file
// (either version), or the plaintext of a wrapped one as is.
func parsePlainDEK(b []byte) ([]byte, error) {
	if bytes.HasPrefix(b, []byte(legacyMagic)) {
		return b, nil
	}
	rest, ok := bytes.CutPrefix(b, []byte(plainMagic))
	if !ok {
		return nil, errors.New("not a DEK file")
	}
	if len(rest) < 1+sha256.Size {
		return nil, errors.New("truncated")
	}
	if rest[0] != plainVersion {
		return nil, fmt.Errorf("unknown version %d", rest[0])
	}
	body := rest[1+sha256.Size:]
	want := plainSum(body)
	if subtle.ConstantTimeCompare(rest[1:1+sha256.Size], want[:]) != 1 {
		return nil, errors.New("checksum mismatch")
	}
	return body, nil
}

// errMismatch means the TLS key is not the certificate's.
var errMismatch = errors.New("the key is not the one the certificate certifies")

// fileError is a damaged file found by checkCerts.
type fileError struct {
	name string
	err  error
}

func (e *fileError) Error() string { return e.name + ": " + e.err.Error() }

// checkKeyPEM checks that b is a TLS private key this node could use.
func checkKeyPEM(b []byte) error {
	_, err := ca.ParseKey(b)
	return err
}

// checkCerts checks that each file parses and that the key is the
// certificate's: a flipped byte in any of them is refused by name.
func checkCerts(c *Certs) error {
	if _, err := ca.ParseCertPEM(c.RootPEM); err != nil {
		return &fileError{RootFile, err}
	}
	chain, err := ca.ParseCertPEM(c.CertPEM)
	if err != nil {
		return &fileError{CertFile, err}
	}
	key, err := ca.ParseKey(c.KeyPEM)
	if err != nil {
		return &fileError{NodeKeyFile, err}
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return errMismatch
	}
	return nil
}
