package seal

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// ChunkSize is the plaintext size of every stream chunk but the last.
const ChunkSize = 64 << 10

const (
	streamVersion  = 0x01
	streamSaltSize = 32
	// StreamHeaderSize is the length of a stream's header: version and salt.
	StreamHeaderSize = 1 + streamSaltSize
	tagSize          = chacha20poly1305.Overhead
	encChunkSize     = ChunkSize + tagSize
	lastChunkFlag    = 0x01
	streamLabel      = "holdfast/seal stream v1"
)

// streamKey derives the per-stream ChaCha20-Poly1305 key from the long-term
// key, the stream's random salt, the header version and the associated data.
func streamKey(k Key, version byte, salt, ad []byte) cipher.AEAD {
	k.mustValid()
	info := make([]byte, 0, len(streamLabel)+1+len(ad))
	info = append(info, streamLabel...)
	info = append(info, version)
	info = append(info, ad...)
	var sk [chacha20poly1305.KeySize]byte
	if _, err := io.ReadFull(hkdf.New(sha256.New, k.b[:], salt, info), sk[:]); err != nil {
		panic("seal: hkdf: " + err.Error()) // unreachable: 32 bytes of HKDF-SHA256
	}
	a, err := chacha20poly1305.New(sk[:])
	if err != nil {
		panic("seal: " + err.Error()) // unreachable: the key length is fixed
	}
	return a
}

// chunkNonce is the 96-bit nonce of chunk n: an 88-bit big-endian counter
// followed by the last-chunk flag byte.
type chunkNonce [chacha20poly1305.NonceSize]byte

func (c *chunkNonce) set(counter uint64, last bool) {
	*c = chunkNonce{}
	for i := 0; i < 8; i++ {
		c[10-i] = byte(counter >> (8 * i))
	}
	if last {
		c[11] = lastChunkFlag
	}
}

// StreamSize returns the length of the sealed stream of a plaintext of n bytes.
func StreamSize(n int64) int64 {
	chunks := n / ChunkSize
	if n%ChunkSize != 0 || n == 0 {
		chunks++
	}
	return StreamHeaderSize + n + chunks*tagSize
}

// StreamPlaintextSize returns the plaintext length of a well-formed sealed
// stream of n bytes, or an error if no stream has that length.
func StreamPlaintextSize(n int64) (int64, error) {
	body := n - StreamHeaderSize
	if body < tagSize {
		return 0, fmt.Errorf("%w: %d bytes is too short for a stream", ErrTruncated, n)
	}
	chunks := (body + encChunkSize - 1) / encChunkSize
	pt := body - chunks*tagSize
	if pt < 0 || StreamSize(pt) != n {
		return 0, fmt.Errorf("%w: no stream is %d bytes long", ErrTruncated, n)
	}
	return pt, nil
}

// NewWriter returns a WriteCloser that seals what is written to it with k
// and ad into w, in the STREAM format described in the package doc. Close
// must be called to write the last chunk; it does not close w.
func NewWriter(k Key, w io.Writer, ad []byte) (io.WriteCloser, error) {
	salt := make([]byte, streamSaltSize)
	_, _ = rand.Read(salt)
	return newWriter(k, w, ad, salt)
}

// newWriter is NewWriter with a given salt, for deterministic tests.
func newWriter(k Key, w io.Writer, ad, salt []byte) (io.WriteCloser, error) {
	hdr := make([]byte, StreamHeaderSize)
	hdr[0] = streamVersion
	copy(hdr[1:], salt)
	sw := &writer{
		a:   streamKey(k, streamVersion, hdr[1:], ad),
		dst: w,
		buf: make([]byte, 0, encChunkSize),
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("write stream header: %w", err)
	}
	return sw, nil
}

type writer struct {
	a       cipher.AEAD
	dst     io.Writer
	buf     []byte // plaintext of the pending chunk, sealed in place
	counter uint64
	nonce   chunkNonce
	err     error // sticky
}

var errClosed = errors.New("seal: write to closed stream")

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	total := len(p)
	for len(p) > 0 {
		if len(w.buf) == ChunkSize {
			// Only flush a full chunk once more data arrives: the last
			// chunk may be full, and is sealed by Close.
			if err := w.flush(false); err != nil {
				return total - len(p), err
			}
		}
		n := min(ChunkSize-len(w.buf), len(p))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
	}
	return total, nil
}

func (w *writer) flush(last bool) error {
	w.nonce.set(w.counter, last)
	out := w.a.Seal(w.buf[:0], w.nonce[:], w.buf, nil)
	if _, err := w.dst.Write(out); err != nil {
		w.err = fmt.Errorf("write stream chunk %d: %w", w.counter, err)
		return w.err
	}
	w.buf = w.buf[:0]
	w.counter++
	return nil
}

// Close seals and writes the last chunk. It does not close the underlying writer.
func (w *writer) Close() error {
	if w.err != nil {
		if w.err == errClosed {
			return nil
		}
		return w.err
	}
	if err := w.flush(true); err != nil {
		return err
	}
	w.err = errClosed
	return nil
}

// NewReader returns a Reader that opens a stream made by NewWriter with the
// same k and ad. It returns plaintext only from chunks that authenticated,
// and reports an error (wrapping ErrOpen, ErrTruncated, ErrTrailingData or
// ErrHeader) instead of io.EOF if the stream is incomplete, reordered,
// duplicated, tampered with, or has bytes after its last chunk. A caller
// that must not act on partial data reads to io.EOF before acting.
func NewReader(k Key, r io.Reader, ad []byte) (io.Reader, error) {
	hdr := make([]byte, StreamHeaderSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: short header", ErrHeader)
		}
		return nil, fmt.Errorf("read stream header: %w", err)
	}
	if hdr[0] != streamVersion {
		return nil, fmt.Errorf("%w: unknown version %#x", ErrHeader, hdr[0])
	}
	return &reader{
		a:     streamKey(k, hdr[0], hdr[1:], ad),
		src:   r,
		buf:   make([]byte, encChunkSize+1),
		ptBuf: make([]byte, ChunkSize),
	}, nil
}

type reader struct {
	a       cipher.AEAD
	src     io.Reader
	buf     []byte // holds one sealed chunk plus one byte of look-ahead
	have    int    // bytes of the next chunk already in buf (the look-ahead)
	ptBuf   []byte // plaintext of the current chunk
	pt      []byte // unread part of ptBuf
	counter uint64
	nonce   chunkNonce
	done    bool  // last chunk opened and verified to be last
	err     error // sticky
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.pt) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		if err := r.next(); err != nil {
			r.err = err
			r.pt = nil
			return 0, err
		}
	}
	n := copy(p, r.pt)
	r.pt = r.pt[n:]
	return n, nil
}

// next reads, opens and checks one chunk. It reads one byte past a full
// chunk to learn whether more follow, so that a full last chunk is told
// apart from a non-last one without trusting the flag alone.
func (r *reader) next() error {
	n, err := io.ReadFull(r.src, r.buf[r.have:])
	n += r.have
	r.have = 0
	switch {
	case err == nil:
		// A full chunk and at least one more byte: not the last chunk.
		chunk := r.buf[:encChunkSize]
		r.nonce.set(r.counter, false)
		pt, err := r.a.Open(r.ptBuf[:0], r.nonce[:], chunk, nil)
		if err != nil {
			r.nonce.set(r.counter, true)
			if _, err2 := r.a.Open(r.ptBuf[:0], r.nonce[:], chunk, nil); err2 == nil {
				return fmt.Errorf("%w: after chunk %d", ErrTrailingData, r.counter)
			}
			return fmt.Errorf("%w: chunk %d", ErrOpen, r.counter)
		}
		r.pt = pt
		// Keep the look-ahead byte as the first byte of the next chunk.
		r.buf[0] = r.buf[encChunkSize]
		r.have = 1
		r.counter++
		return nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if n == 0 {
			return fmt.Errorf("%w: no last chunk after chunk %d", ErrTruncated, r.counter)
		}
		if n < tagSize {
			return fmt.Errorf("%w: chunk %d is %d bytes", ErrTruncated, r.counter, n)
		}
		chunk := r.buf[:n]
		r.nonce.set(r.counter, true)
		pt, err := r.a.Open(r.ptBuf[:0], r.nonce[:], chunk, nil)
		if err != nil {
			// A full-size non-last chunk followed by nothing is a truncated
			// stream; anything else is tampering. Both fail authentication.
			if n == encChunkSize {
				r.nonce.set(r.counter, false)
				if _, err2 := r.a.Open(r.ptBuf[:0], r.nonce[:], chunk, nil); err2 == nil {
					return fmt.Errorf("%w: no last chunk after chunk %d", ErrTruncated, r.counter)
				}
			}
			return fmt.Errorf("%w: chunk %d", ErrOpen, r.counter)
		}
		if len(pt) == 0 && r.counter > 0 {
			// Writers only make an empty last chunk for an empty stream.
			return fmt.Errorf("%w: empty last chunk %d", ErrOpen, r.counter)
		}
		r.pt = pt
		r.done = true
		r.counter++
		return nil
	default:
		return fmt.Errorf("read stream chunk %d: %w", r.counter, err)
	}
}
