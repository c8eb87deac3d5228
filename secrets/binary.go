package secrets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// The binary snapshot form of a Store, for raft snapshots (which are sealed
// before they reach disk). JSON spends most of a large snapshot's time
// scanning base64 data twice; this form copies the data as it is:
//
//	store  = version(1 byte, 1) count(uvarint) secret*        sorted by ID
//	secret = str(id) str(name) str(digest) time(created) time(updated)
//	         uvarint(labels) (str(key) str(value))*           sorted by key
//	         uvarint(grants) str(node)*                       sorted
//	         str(data)
//	str    = uvarint(length) bytes
//	time   = str(time.Time.MarshalBinary)
//
// Decoding is as strict as UnmarshalJSON: every secret must pass
// Secret.Validate, IDs and names must be unique, and nothing may follow.
const binaryVersion = 1

// Frozen returns a copy of the store to encode later, made without copying
// any secret's data: commands replace a secret's labels and grants rather
// than change them in place, and data never changes, so a copy of each
// secret's fields is a consistent picture that later commands leave alone.
// Only AppendBinary and the read methods may be used on it.
func (st *Store) Frozen() *Store {
	out := &Store{byID: make(map[string]*Secret, len(st.byID))}
	for id, s := range st.byID {
		c := *s
		out.byID[id] = &c
	}
	return out
}

// AppendBinary appends the store's binary snapshot form to b.
func (st *Store) AppendBinary(b []byte) []byte {
	size := 16
	for _, s := range st.byID {
		size += len(s.Data) + 128
	}
	b, _ = st.encodeBinary(slices.Grow(b, size), nil)
	return b
}

// writeChunk is about how much WriteBinary holds before it writes.
const writeChunk = 256 << 10

// WriteBinary writes prefix and then the store's binary snapshot form to
// w — the bytes of AppendBinary(prefix) — in chunks of about 256 KiB, so
// that a large store is never held twice in memory (a raft snapshot of
// 100,000 secrets of 1 KiB was a buffer of 110 MiB). Each chunk is
// zeroed once written: it holds secrets' data.
func (st *Store) WriteBinary(w io.Writer, prefix []byte) error {
	b := make([]byte, 0, writeChunk+len(prefix)+64<<10)
	defer func() { clear(b[:cap(b)]) }()
	b = append(b, prefix...)
	b, err := st.encodeBinary(b, func(b []byte) ([]byte, error) {
		if len(b) < writeChunk {
			return b, nil
		}
		_, err := w.Write(b)
		clear(b)
		return b[:0], err
	})
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// encodeBinary appends the binary form to b, calling flush, when set,
// after each secret with what it holds so far; flush returns what to go
// on appending to.
func (st *Store) encodeBinary(b []byte, flush func([]byte) ([]byte, error)) ([]byte, error) {
	ids := make([]string, 0, len(st.byID))
	for id := range st.byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = append(b, binaryVersion)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = appendSecret(b, st.byID[id])
		if flush != nil {
			var err error
			if b, err = flush(b); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

func appendSecret(b []byte, s *Secret) []byte {
	b = appendStr(b, s.ID)
	b = appendStr(b, s.Name)
	b = appendStr(b, s.Digest)
	b = appendTime(b, s.CreatedAt)
	b = appendTime(b, s.UpdatedAt)
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		b = appendStr(b, s.Labels[k])
	}
	b = binary.AppendUvarint(b, uint64(len(s.Grants)))
	for _, g := range s.Grants {
		b = appendStr(b, g)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Data)))
	return append(b, s.Data...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	tb, err := normTime(t).MarshalBinary()
	if err != nil {
		// Only a time with a fractional-minute zone offset fails, and
		// normTime makes every time UTC.
		panic(fmt.Sprintf("secrets: encode time: %v", err))
	}
	b = binary.AppendUvarint(b, uint64(len(tb)))
	return append(b, tb...)
}

// errTruncated is the reason for a binary store that ends early.
var errTruncated = errors.New("truncated")

// binReader reads the binary form; its methods record the first error and
// return zero values after it.
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *binReader) str() string { return string(r.bytes()) }

func (r *binReader) time() time.Time {
	var t time.Time
	tb := r.bytes()
	if r.err == nil {
		if err := t.UnmarshalBinary(tb); err != nil {
			r.err = errors.New("bad time")
		}
	}
	return normTime(t)
}

// count reads a count of items that take at least min bytes each, so a
// forged count cannot make the decoder allocate more than the input.
func (r *binReader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/min) {
		r.err = errTruncated
		return 0
	}
	return int(n)
}

// UnmarshalBinary replaces the store with the one in b, or leaves it
// unchanged and returns an error wrapping ErrBadSnapshot. Errors never
// contain secret data. The secrets' data is copied out of b.
func (st *Store) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != binaryVersion {
		return fmt.Errorf("%w: unknown binary store version", ErrBadSnapshot)
	}
	r := &binReader{b: b[1:]}
	n := r.count(8)
	var ns Store
	ns.byID = make(map[string]*Secret, n)
	ns.byName = make(map[string]string, n)
	for i := 0; i < n && r.err == nil; i++ {
		s := &Secret{ID: r.str(), Name: r.str(), Digest: r.str(), CreatedAt: r.time(), UpdatedAt: r.time()}
		if nl := r.count(2); nl > 0 {
			s.Labels = make(map[string]string, nl)
			for range nl {
				k := r.str()
				s.Labels[k] = r.str()
			}
		}
		for range r.count(1) {
			s.Grants = append(s.Grants, r.str())
		}
		s.Data = append([]byte(nil), r.bytes()...)
		s.Size = len(s.Data)
		if r.err != nil {
			break
		}
		if err := s.Validate(); err != nil {
			return fmt.Errorf("%w: secret %d: %w", ErrBadSnapshot, i, err)
		}
		if err := ns.checkFree(s); err != nil {
			return fmt.Errorf("%w: secret %d: %w", ErrBadSnapshot, i, err)
		}
		ns.insert(s)
	}
	switch {
	case r.err != nil:
		return fmt.Errorf("%w: binary store: %v", ErrBadSnapshot, r.err)
	case len(r.b) != 0:
		return fmt.Errorf("%w: trailing data after the store", ErrBadSnapshot)
	}
	*st = ns
	return nil
}
