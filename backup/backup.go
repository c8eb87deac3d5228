package backup

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/internal/strictjson"
)

const (
	magic   = "HFBACKUP"
	version = 0x01
	// SaltSize is the length of the random salt of every key derivation.
	SaltSize = 32
	// maxMetaLen bounds the header's metadata document.
	maxMetaLen = 64 << 10
	adLabel    = "holdfast/backup v1"
	// MinPassphrase is the shortest passphrase ForPassphrase accepts.
	MinPassphrase = 12
)

// KDF says how a backup's key was derived.
type KDF byte

// The key derivations.
const (
	// KDFUnlockKey derives the key from the cluster's unlock key:
	// autolock.Key.BackupKey(salt).
	KDFUnlockKey KDF = 0x01
	// KDFArgon2id derives the key from a passphrase:
	// Argon2id(passphrase, salt, time, memory, threads, 32).
	KDFArgon2id KDF = 0x02
)

func (k KDF) String() string {
	switch k {
	case KDFUnlockKey:
		return "unlock-key"
	case KDFArgon2id:
		return "passphrase"
	}
	return fmt.Sprintf("kdf(%d)", byte(k))
}

// Argon2Params are Argon2id's cost parameters, stored in the header.
type Argon2Params struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 follows RFC 9106's second recommendation for memory-
// constrained uses (t=3, 64 MiB), with 2 lanes.
var DefaultArgon2 = Argon2Params{Time: 3, MemoryKiB: 64 << 10, Threads: 2}

// Bounds a reader accepts, so a hostile header cannot make restore
// allocate without limit or spin for ever.
const (
	minArgonMemoryKiB = 8 << 10
	maxArgonMemoryKiB = 1 << 20
	maxArgonTime      = 16
	maxArgonThreads   = 16
)

func (p Argon2Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("argon2id time %d outside 1..%d", p.Time, maxArgonTime)
	case p.MemoryKiB < minArgonMemoryKiB || p.MemoryKiB > maxArgonMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d", p.MemoryKiB, minArgonMemoryKiB, maxArgonMemoryKiB)
	case p.Threads < 1 || p.Threads > maxArgonThreads:
		return fmt.Errorf("argon2id threads %d outside 1..%d", p.Threads, maxArgonThreads)
	}
	return nil
}

// Meta is what the header says about the state in the file. It is not
// secret, and it is authenticated with the data.
type Meta struct {
	ClusterID string    `json:"cluster_id"`
	Index     uint64    `json:"index"` // the raft index the state includes
	Term      uint64    `json:"term"`
	CreatedAt time.Time `json:"created_at"`
	Autolock  bool      `json:"autolock"`
	Size      int64     `json:"size"` // plaintext bytes
}

// Header is a backup file's clear header.
type Header struct {
	KDF    KDF
	Salt   [SaltSize]byte
	Argon2 Argon2Params // with KDFArgon2id only
	KeyID  seal.KeyID   // the ID of the derived key
	Meta   Meta
	raw    []byte
}

// Errors of reading a backup.
var (
	// ErrFormat means the bytes are not a backup this build can read.
	ErrFormat = errors.New("not a holdfast backup file, or its header is damaged")
	// ErrWrongKey means the key or passphrase is not the one the file was
	// sealed under.
	ErrWrongKey = errors.New("the key does not open this backup")
	// ErrTampered means the sealed data failed authentication: the file
	// was changed, truncated or extended.
	ErrTampered = errors.New("backup failed its integrity check")
	// ErrWeakPassphrase refuses passphrases shorter than MinPassphrase.
	ErrWeakPassphrase = fmt.Errorf("the passphrase must be at least %d characters", MinPassphrase)
)

// ForUnlockKey returns a header and the key to seal a backup of meta under
// a key derived from the unlock key k.
func ForUnlockKey(k autolock.Key, meta Meta) (*Header, seal.Key, error) {
	h := &Header{KDF: KDFUnlockKey, Meta: meta}
	_, _ = rand.Read(h.Salt[:])
	key := k.BackupKey(h.Salt[:])
	h.KeyID = key.ID()
	if err := h.encode(); err != nil {
		return nil, seal.Key{}, err
	}
	return h, key, nil
}

// ForPassphrase returns a header and the key to seal a backup of meta under
// a key derived from passphrase with Argon2id and parameters p.
func ForPassphrase(passphrase []byte, meta Meta, p Argon2Params) (*Header, seal.Key, error) {
	if len(passphrase) < MinPassphrase {
		return nil, seal.Key{}, ErrWeakPassphrase
	}
	if err := p.validate(); err != nil {
		return nil, seal.Key{}, err
	}
	h := &Header{KDF: KDFArgon2id, Argon2: p, Meta: meta}
	_, _ = rand.Read(h.Salt[:])
	key := argonKey(passphrase, h.Salt[:], p)
	h.KeyID = key.ID()
	if err := h.encode(); err != nil {
		return nil, seal.Key{}, err
	}
	return h, key, nil
}

func argonKey(passphrase, salt []byte, p Argon2Params) seal.Key {
	b := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, seal.KeySize)
	k, err := seal.ParseKey(b)
	if err != nil {
		panic("backup: " + err.Error()) // unreachable: the length is fixed
	}
	clear(b)
	return k
}

// KeyFromUnlockKey derives the file's key from unlock key k; ErrWrongKey if
// the file was sealed under another key or with a passphrase.
func (h *Header) KeyFromUnlockKey(k autolock.Key) (seal.Key, error) {
	if h.KDF != KDFUnlockKey {
		return seal.Key{}, fmt.Errorf("%w: it was sealed with a passphrase, not an unlock key", ErrWrongKey)
	}
	key := k.BackupKey(h.Salt[:])
	if key.ID() != h.KeyID {
		return seal.Key{}, ErrWrongKey
	}
	return key, nil
}

// KeyFromPassphrase derives the file's key from passphrase; ErrWrongKey if
// the file was sealed under another passphrase or an unlock key.
func (h *Header) KeyFromPassphrase(passphrase []byte) (seal.Key, error) {
	if h.KDF != KDFArgon2id {
		return seal.Key{}, fmt.Errorf("%w: it was sealed with an unlock key, not a passphrase", ErrWrongKey)
	}
	key := argonKey(passphrase, h.Salt[:], h.Argon2)
	if key.ID() != h.KeyID {
		return seal.Key{}, ErrWrongKey
	}
	return key, nil
}

// Bytes returns the header as written to the file.
func (h *Header) Bytes() []byte { return bytes.Clone(h.raw) }

// FileSize is the length of the whole backup file.
func (h *Header) FileSize() int64 { return int64(len(h.raw)) + seal.StreamSize(h.Meta.Size) }

func (h *Header) encode() error {
	if h.Meta.Size < 0 {
		return fmt.Errorf("backup: negative size %d", h.Meta.Size)
	}
	js, err := json.Marshal(h.Meta)
	if err != nil {
		return fmt.Errorf("backup: encode meta: %w", err)
	}
	if len(js) > maxMetaLen {
		return fmt.Errorf("backup: meta is %d bytes; at most %d", len(js), maxMetaLen)
	}
	b := append([]byte(magic), version, byte(h.KDF))
	b = append(b, h.Salt[:]...)
	if h.KDF == KDFArgon2id {
		b = binary.BigEndian.AppendUint32(b, h.Argon2.Time)
		b = binary.BigEndian.AppendUint32(b, h.Argon2.MemoryKiB)
		b = append(b, h.Argon2.Threads)
	}
	b = append(b, h.KeyID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(js)))
	h.raw = append(b, js...)
	return nil
}

// ReadHeader reads and checks a backup file's header from r, leaving r at
// the start of the sealed stream. Errors wrap ErrFormat.
func ReadHeader(r io.Reader) (*Header, error) {
	fail := func(format string, args ...any) (*Header, error) {
		return nil, fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
	}
	var raw []byte
	read := func(n int) ([]byte, bool) {
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, false
		}
		raw = append(raw, b...)
		return b, true
	}
	b, ok := read(len(magic) + 2 + SaltSize)
	if !ok {
		return fail("short header")
	}
	if string(b[:len(magic)]) != magic {
		return fail("no %s magic", magic)
	}
	if v := b[len(magic)]; v != version {
		return fail("unknown version %d", v)
	}
	h := &Header{KDF: KDF(b[len(magic)+1])}
	copy(h.Salt[:], b[len(magic)+2:])
	switch h.KDF {
	case KDFUnlockKey:
	case KDFArgon2id:
		p, ok := read(9)
		if !ok {
			return fail("short header")
		}
		h.Argon2 = Argon2Params{Time: binary.BigEndian.Uint32(p), MemoryKiB: binary.BigEndian.Uint32(p[4:]), Threads: p[8]}
		if err := h.Argon2.validate(); err != nil {
			return fail("%v", err)
		}
	default:
		return fail("unknown key derivation %d", byte(h.KDF))
	}
	b, ok = read(seal.KeyIDSize + 4)
	if !ok {
		return fail("short header")
	}
	copy(h.KeyID[:], b)
	n := binary.BigEndian.Uint32(b[seal.KeyIDSize:])
	if n > maxMetaLen {
		return fail("meta length %d", n)
	}
	js, ok := read(int(n))
	if !ok {
		return fail("short meta")
	}
	if err := strictjson.Unmarshal(js, &h.Meta); err != nil {
		return fail("meta is not a valid document")
	}
	if h.Meta.Size < 0 || h.Meta.ClusterID == "" {
		return fail("meta has no cluster or a negative size")
	}
	h.raw = raw
	return h, nil
}

func (h *Header) ad() []byte {
	ad := make([]byte, 0, len(adLabel)+1+len(h.raw))
	ad = append(ad, adLabel...)
	ad = append(ad, 0)
	return append(ad, h.raw...)
}

// NewWriter writes h's header to w and returns the writer of the sealed
// data; write exactly h.Meta.Size bytes, then Close it.
func NewWriter(w io.Writer, h *Header, key seal.Key) (io.WriteCloser, error) {
	if key.IsZero() || key.ID() != h.KeyID {
		return nil, errors.New("backup: the key is not the header's")
	}
	if _, err := w.Write(h.raw); err != nil {
		return nil, err
	}
	sw, err := seal.NewWriter(key, w, h.ad())
	if err != nil {
		return nil, err
	}
	return &sizedWriter{w: sw, want: h.Meta.Size}, nil
}

// sizedWriter refuses to finish a stream of another length than the
// header says.
type sizedWriter struct {
	w    io.WriteCloser
	n    int64
	want int64
}

func (s *sizedWriter) Write(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.want {
		return 0, fmt.Errorf("backup: more data than the header's %d bytes", s.want)
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *sizedWriter) Close() error {
	if s.n != s.want {
		return fmt.Errorf("backup: wrote %d bytes; the header says %d", s.n, s.want)
	}
	return s.w.Close()
}

// NewReader returns the plaintext of the sealed stream that follows h in r.
// It returns errors wrapping ErrTampered for anything that fails
// authentication, and only io.EOF after the whole file authenticated and
// its length matched the header.
func NewReader(r io.Reader, h *Header, key seal.Key) (io.Reader, error) {
	if key.IsZero() || key.ID() != h.KeyID {
		return nil, ErrWrongKey
	}
	sr, err := seal.NewReader(key, r, h.ad())
	if err != nil {
		return nil, streamErr(err)
	}
	return &reader{r: sr, want: h.Meta.Size}, nil
}

type reader struct {
	r    io.Reader
	n    int64
	want int64
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	switch {
	case r.n > r.want:
		return 0, fmt.Errorf("%w: more data than the header's %d bytes", ErrTampered, r.want)
	case err == io.EOF && r.n != r.want:
		return n, fmt.Errorf("%w: %d bytes; the header says %d", ErrTampered, r.n, r.want)
	case err != nil && err != io.EOF:
		return n, streamErr(err)
	}
	return n, err
}

// streamErr marks authentication failures as ErrTampered and leaves I/O
// errors as they are.
func streamErr(err error) error {
	for _, e := range []error{seal.ErrOpen, seal.ErrTruncated, seal.ErrTrailingData, seal.ErrHeader, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", ErrTampered, err)
		}
	}
	return err
}
