package raftlog

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
)

const (
	// recordVersion is the version byte of the log records this release
	// seals: 0x02, written only by a store that keeps a sealed log state
	// (FORMAT.md, section 1.2). Readers also take recordVersionV1, the
	// previous release's; both are sealed and bound alike.
	recordVersion   = 0x02
	recordVersionV1 = 0x01
	// recordHeaderSize is the version byte plus the key ID.
	recordHeaderSize = 1 + seal.KeyIDSize
	// minRecordSize is the smallest well-formed record.
	minRecordSize = recordHeaderSize + seal.Overhead
	recordADLabel = "holdfast/raftlog entry v1"
)

// record is a sealed log entry as stored in the Data field of the raft.Log
// that raft-boltdb encodes: version || key ID || seal.Seal output.
type record struct {
	version byte
	keyID   seal.KeyID
	sealed  []byte // nonce || ciphertext || tag
}

// parseRecord splits b into its fields. The result aliases b.
func parseRecord(b []byte) (record, error) {
	if len(b) < minRecordSize {
		return record{}, fmt.Errorf("%w: record is %d bytes; at least %d", ErrTampered, len(b), minRecordSize)
	}
	if b[0] != recordVersion && b[0] != recordVersionV1 {
		return record{}, fmt.Errorf("%w: unknown record version %#x", ErrTampered, b[0])
	}
	r := record{version: b[0], sealed: b[recordHeaderSize:]}
	copy(r.keyID[:], b[1:recordHeaderSize])
	return r, nil
}

// marshal is the inverse of parseRecord.
func (r record) marshal() []byte {
	out := make([]byte, 0, recordHeaderSize+len(r.sealed))
	out = append(out, r.version)
	out = append(out, r.keyID[:]...)
	return append(out, r.sealed...)
}

// entryAD is the associated data of a log record: what it is, its format
// version and key, its cluster, and its place in the log.
func entryAD(clusterID string, version byte, id seal.KeyID, l *raft.Log) []byte {
	ad := make([]byte, 0, len(recordADLabel)+1+1+seal.KeyIDSize+2+len(clusterID)+8+8+1+12)
	ad = append(ad, recordADLabel...)
	ad = append(ad, 0)
	ad = append(ad, version)
	ad = append(ad, id[:]...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(clusterID)))
	ad = append(ad, clusterID...)
	ad = binary.BigEndian.AppendUint64(ad, l.Index)
	ad = binary.BigEndian.AppendUint64(ad, l.Term)
	ad = append(ad, byte(l.Type))
	return appendTime(ad, l.AppendedAt)
}

// appendTime encodes a log's AppendedAt for the associated data: Unix
// seconds (8 bytes) and nanoseconds (4 bytes); the zero time is all zeros.
func appendTime(ad []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(ad, make([]byte, 12)...)
	}
	ad = binary.BigEndian.AppendUint64(ad, uint64(t.Unix()))
	return binary.BigEndian.AppendUint32(ad, uint32(t.Nanosecond()))
}

// sealEntry returns a copy of l whose Data is the sealed record of l's
// Data and Extensions, and whose Extensions is nil.
func sealEntry(k seal.Key, clusterID string, l *raft.Log) *raft.Log {
	return sealEntryVersion(k, clusterID, l, recordVersion)
}

// sealEntryVersion is sealEntry with the given record version.
func sealEntryVersion(k seal.Key, clusterID string, l *raft.Log, version byte) *raft.Log {
	out := *l
	out.Extensions = nil
	pt := make([]byte, 0, binary.MaxVarintLen64+len(l.Data)+len(l.Extensions))
	pt = binary.AppendUvarint(pt, uint64(len(l.Data)))
	pt = append(pt, l.Data...)
	pt = append(pt, l.Extensions...)
	id := k.ID()
	rec := make([]byte, 0, recordHeaderSize+seal.Overhead+len(pt))
	rec = append(rec, version)
	rec = append(rec, id[:]...)
	out.Data = seal.AppendSeal(rec, k, pt, entryAD(clusterID, version, id, l))
	return &out
}

// openEntry authenticates the stored log raw, found under index idx, and
// fills l with the plaintext entry. Errors wrap ErrTampered or ErrUnknownKey.
func openEntry(keys *Keyring, clusterID string, idx uint64, raw *raft.Log, l *raft.Log) error {
	if raw.Index != idx {
		return fmt.Errorf("%w: stored under index %d but holds entry %d", ErrTampered, idx, raw.Index)
	}
	if len(raw.Extensions) != 0 {
		return fmt.Errorf("%w: unsealed extensions", ErrTampered)
	}
	rec, err := parseRecord(raw.Data)
	if err != nil {
		return err
	}
	k, ok := keys.Lookup(rec.keyID)
	if !ok {
		return fmt.Errorf("%w: key %v", ErrUnknownKey, rec.keyID)
	}
	pt, err := seal.Open(k, rec.sealed, entryAD(clusterID, rec.version, rec.keyID, raw))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTampered, err)
	}
	n, w := binary.Uvarint(pt)
	if w <= 0 || n > uint64(len(pt)-w) {
		// Authenticated but malformed: only a broken writer makes this.
		return fmt.Errorf("%w: malformed entry plaintext", ErrTampered)
	}
	*l = *raw
	l.Data, l.Extensions = nil, nil
	if n > 0 {
		l.Data = pt[w : w+int(n)]
	}
	if rest := pt[w+int(n):]; len(rest) > 0 {
		l.Extensions = rest
	}
	return nil
}

// recordKeyID returns the ID of the key that sealed a stored log.
func recordKeyID(raw *raft.Log) (seal.KeyID, error) {
	rec, err := parseRecord(raw.Data)
	if err != nil {
		return seal.KeyID{}, err
	}
	return rec.keyID, nil
}
