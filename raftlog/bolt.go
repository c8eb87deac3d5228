package raftlog

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/go-metrics/compat"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// boltLog is the bolt file under the sealed store, in raft-boltdb v2's
// layout and encoding, byte for byte (FORMAT.md §1): bucket "logs" maps an
// entry's index (8 bytes, big endian) to the msgpack encoding of its
// sealed raft.Log, and bucket "conf" holds raft's stable store. A file
// written by either opens with the other.
//
// It is ours, not raft-boltdb's, for one reason: raft-boltdb builds a new
// msgpack handle, and grows a buffer from nothing, for every entry it
// stores or reads. Under load that was most of a manager's allocations,
// and the garbage collector's work with them. Here one handle serves every
// entry and each entry is encoded into space sized for it.
type boltLog struct {
	db *bbolt.DB
}

var (
	bucketLogs = []byte("logs")
	bucketConf = []byte("conf")
	// raft-boltdb encodes times in msgpack's old format (TimeNotBuiltin)
	// and decodes with the default handle; so do we. A handle is safe for
	// concurrent use once built.
	encodeHandle = newEncodeHandle()
	decodeHandle = &codec.MsgpackHandle{}
)

func newEncodeHandle() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.TimeNotBuiltin = true
	return h
}

// openBolt opens (creating if need be) the bolt file at path. With
// opts.ReadOnly it creates nothing.
func openBolt(path string, opts *bbolt.Options) (*boltLog, error) {
	db, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		return nil, err
	}
	b := &boltLog{db: db}
	if opts != nil && opts.ReadOnly {
		return b, nil
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketConf)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

func (b *boltLog) Close() error { return b.db.Close() }

func indexKey(idx uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), idx)
}

// FirstIndex is the lowest index stored, 0 when there is none.
func (b *boltLog) FirstIndex() (uint64, error) {
	return b.edgeIndex(false)
}

// LastIndex is the highest index stored, 0 when there is none.
func (b *boltLog) LastIndex() (uint64, error) {
	return b.edgeIndex(true)
}

func (b *boltLog) edgeIndex(last bool) (idx uint64, err error) {
	err = b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		k, _ := c.First()
		if last {
			k, _ = c.Last()
		}
		if k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

// GetLog reads the entry at idx into l, or returns raft.ErrLogNotFound.
func (b *boltLog) GetLog(idx uint64, l *raft.Log) error {
	defer metrics.MeasureSince([]string{"raft", "boltdb", "getLog"}, time.Now())
	return b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(idx))
		if v == nil {
			return raft.ErrLogNotFound
		}
		return decodeLogValue(v, l)
	})
}

// decodeLogValue decodes a stored value into l. The decoder copies what it
// keeps: v is bolt's memory map, gone when the transaction ends. A value
// that does not decode wraps ErrTampered: only damage to the file makes one.
func decodeLogValue(v []byte, l *raft.Log) error {
	*l = raft.Log{}
	if err := codec.NewDecoderBytes(v, decodeHandle).Decode(l); err != nil {
		return fmt.Errorf("%w: a stored log entry does not decode: %v", ErrTampered, err)
	}
	return nil
}

// StoreLogs stores logs in one transaction.
func (b *boltLog) StoreLogs(logs []*raft.Log) error {
	return b.db.Update(func(tx *bbolt.Tx) error { return b.putLogs(tx, logs) })
}

// putLogs stores logs in tx.
func (b *boltLog) putLogs(tx *bbolt.Tx, logs []*raft.Log) error {
	defer metrics.MeasureSince([]string{"raft", "boltdb", "storeLogs"}, time.Now())
	// Bolt keeps each value until the commit, so every entry gets its own
	// space: one allocation for all, each entry's data plus its framing.
	size := 0
	for _, l := range logs {
		size += len(l.Data) + len(l.Extensions) + 128
	}
	arena := make([]byte, 0, size)
	var scratch []byte
	enc := codec.NewEncoderBytes(&scratch, encodeHandle)
	bucket := tx.Bucket(bucketLogs)
	for _, l := range logs {
		scratch = scratch[:0]
		enc.ResetBytes(&scratch)
		if err := enc.Encode(l); err != nil {
			return err
		}
		if len(arena)+len(scratch) > cap(arena) {
			arena = make([]byte, 0, max(size, len(scratch)))
		}
		start := len(arena)
		arena = append(arena, scratch...)
		if err := bucket.Put(indexKey(l.Index), arena[start:len(arena):len(arena)]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteRange deletes the entries from lo to hi, both included.
func (b *boltLog) DeleteRange(lo, hi uint64) error {
	return b.db.Update(func(tx *bbolt.Tx) error { return deleteLogs(tx, lo, hi) })
}

// deleteLogs deletes the entries from lo to hi in tx.
func deleteLogs(tx *bbolt.Tx, lo, hi uint64) error {
	c := tx.Bucket(bucketLogs).Cursor()
	for k, _ := c.Seek(indexKey(lo)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Set stores v under k in the stable store.
func (b *boltLog) Set(k, v []byte) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketConf).Put(k, v)
	})
}

// Get returns a copy of the value under k, or raft-boltdb's ErrKeyNotFound
// (raft tells a fresh store by that error's text).
func (b *boltLog) Get(k []byte) (v []byte, err error) {
	err = b.db.View(func(tx *bbolt.Tx) error {
		got := tx.Bucket(bucketConf).Get(k)
		if got == nil {
			return raftboltdb.ErrKeyNotFound
		}
		v = append([]byte(nil), got...)
		return nil
	})
	return v, err
}

// SetUint64 stores val under k, 8 bytes big endian.
func (b *boltLog) SetUint64(k []byte, val uint64) error {
	return b.Set(k, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 reads what SetUint64 stored.
func (b *boltLog) GetUint64(k []byte) (uint64, error) {
	v, err := b.Get(k)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %q holds %d bytes, not a uint64", ErrTampered, k, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
