// Package seal is the only package in holdfast that touches cipher
// constructors. It owns the symmetric Key type, sealing of small messages
// with associated data (Seal, Open), and a chunked STREAM format for large
// data (NewWriter, NewReader). There are no algorithm, nonce or key-length
// knobs.
//
// # Caller's duties
//
//  1. Make keys only with NewKey or ParseKey. Store them with Key.Bytes only
//     in a key file; never log them (Key's String prints only its ID).
//  2. Put in the associated data everything that says what a message is
//     and where it belongs (purpose, format version, key ID, position), so
//     a message moved to another place fails to open.
//  3. Treat any error from Open or a stream Reader as "nothing here can be
//     trusted". Open never returns partial plaintext. A stream Reader
//     returns plaintext chunk by chunk as each one authenticates, so a
//     caller that must not act on partial data reads to io.EOF first.
//  4. Name a key in sealed records by Key.ID, a hash of the key under a
//     domain-separation label, never by its bytes.
//
// # Messages
//
// Seal uses XChaCha20-Poly1305 (golang.org/x/crypto/chacha20poly1305) with
// a fresh random 192-bit nonce per message; its output is
// nonce(24) || ciphertext || tag(16). Random 192-bit nonces have no
// practical per-key message limit (a collision after 2^80 messages is
// still unlikely), so the key is rotated for other reasons, not for nonce
// safety.
//
// # Streams
//
// The STREAM construction follows age's internal/stream:
//
//	header = version(1, 0x01) || salt(32, random)
//	k_s    = HKDF-SHA256(ikm = key, salt = salt,
//	                     info = "holdfast/seal stream v1" || version || ad)
//	chunk_i = ChaCha20-Poly1305(k_s, nonce_i, plaintext_i, no ad)
//	nonce_i = uint88_be(i) || flag, flag = 0x01 on the last chunk, else 0x00
//
// Every chunk holds ChunkSize (64 KiB) of plaintext except the last, which
// holds 1..ChunkSize bytes; only an empty stream has an empty last chunk.
// The associated data is bound through the derived key, so a stream opened
// with other ad fails at its first chunk. A reader rejects a missing header
// or unknown version (ErrHeader), a stream without a last chunk
// (ErrTruncated), a chunk that fails authentication, which covers
// reordered, duplicated and modified chunks (ErrOpen), and any byte after
// the last chunk (ErrTrailingData).
//
// # Why XChaCha20-Poly1305 (measured)
//
// BenchmarkAEAD in this package, on the development machine (2 vCPU AMD
// EPYC with AES-NI and AVX2, Go 1.26, -count 6, medians, including cipher
// construction and a random nonce per message):
//
//	                      1 KiB        64 KiB
//	AES-256-GCM           ~630 MB/s    ~1750 MB/s
//	XChaCha20-Poly1305    ~740 MB/s    ~1190 MB/s
//
// At the size of a raft entry (about 1 KiB) XChaCha20-Poly1305 is as fast
// as AES-GCM or faster, because AES-GCM pays for its key schedule per call;
// at 64 KiB AES-GCM is about 1.5x faster, but both are far beyond what a
// bolt file with fsync accepts. AES-GCM with random 96-bit nonces would
// also need a hard per-key limit of about 2^32 messages (2^30 in practice);
// XChaCha20-Poly1305's 192-bit nonces need none. So XChaCha20-Poly1305 it
// is, as the design proposed from the start.
package seal
