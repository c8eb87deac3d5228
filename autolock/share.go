package autolock

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"sync"
)

const (
	// SharePrefix starts every share's text form.
	SharePrefix = "HFSHR-1-"

	fingerprintSize    = 4
	fingerprintLabel   = "holdfast/unlock key share v1"
	shareChecksumLabel = "holdfast/unlock key share checksum v1"
	shareChecksumSize  = 4
	// shareSize is threshold(1) || index(1) || fingerprint(4) || y(32).
	shareSize     = 2 + fingerprintSize + KeySize
	redactedShare = "autolock.Share(redacted)"
)

// Share is one of n shares of an unlock key, any threshold of which
// recover it (Shamir's secret sharing over GF(2^8), one polynomial per
// byte of the key). Make shares with Split or ParseShare; the zero Share
// is not a share.
//
// A share is secret, though fewer than threshold of them reveal nothing
// of the key beyond its 4-byte fingerprint. As with Key, only an explicit
// String call prints it.
type Share struct {
	threshold byte
	index     byte // the x coordinate, 1..255
	fp        [fingerprintSize]byte
	y         [KeySize]byte
	valid     bool
}

// fingerprint names a key in its shares: the first 4 bytes of
// SHA-256("holdfast/unlock key share v1" || key). It lets Combine tell
// shares of different keys apart and check the key it recovers.
func fingerprint(key []byte) [fingerprintSize]byte {
	h := sha256.New()
	h.Write([]byte(fingerprintLabel))
	h.Write(key)
	var fp [fingerprintSize]byte
	copy(fp[:], h.Sum(nil))
	return fp
}

// Split splits k into n shares, any threshold of which recover it with
// Combine. It requires 2 <= threshold <= n <= 255 (a threshold of 1 would
// make every share the key itself) and returns an error wrapping
// ErrSplitParameters otherwise. Shares have indexes 1..n, in order.
func Split(k Key, n, threshold int) ([]Share, error) {
	return split(k, n, threshold, rand.Reader)
}

func split(k Key, n, threshold int, rnd io.Reader) ([]Share, error) {
	if threshold < 2 || n < threshold || n > 255 {
		return nil, fmt.Errorf("%w (got threshold %d of %d shares)", ErrSplitParameters, threshold, n)
	}
	if !k.valid {
		return nil, fmt.Errorf("autolock: cannot split the zero Key")
	}
	ys, err := splitBytes(k.b[:], n, threshold, rnd)
	if err != nil {
		return nil, err
	}
	fp := fingerprint(k.b[:])
	shares := make([]Share, n)
	for i, y := range ys {
		shares[i] = Share{threshold: byte(threshold), index: byte(i + 1), fp: fp, valid: true}
		copy(shares[i].y[:], y)
		clear(y)
	}
	return shares, nil
}

// ParseShare parses a share in the form String returns, ignoring
// surrounding white space and the case of letters. It returns an error
// wrapping ErrMistyped when the form is right but the checksum fails (a
// typo), and ErrMalformedShare for anything else. Errors never contain s.
func ParseShare(s string) (Share, error) {
	b, err := decodeText(s, SharePrefix, shareSize+shareChecksumSize, ErrMalformedShare)
	if err != nil {
		return Share{}, err
	}
	sum := shareChecksum(b[:shareSize])
	if subtle.ConstantTimeCompare(sum[:], b[shareSize:]) != 1 {
		return Share{}, fmt.Errorf("%w: the unlock key share has a typo", ErrMistyped)
	}
	sh := Share{threshold: b[0], index: b[1], valid: true}
	if sh.threshold < 2 {
		return Share{}, fmt.Errorf("%w: threshold %d", ErrMalformedShare, sh.threshold)
	}
	if sh.index == 0 {
		return Share{}, fmt.Errorf("%w: index 0", ErrMalformedShare)
	}
	copy(sh.fp[:], b[2:2+fingerprintSize])
	copy(sh.y[:], b[2+fingerprintSize:shareSize])
	clear(b)
	return sh, nil
}

// shareChecksum is the first 4 bytes of
// SHA-256("holdfast/unlock key share checksum v1" || body).
func shareChecksum(body []byte) [shareChecksumSize]byte {
	h := sha256.New()
	h.Write([]byte(shareChecksumLabel))
	h.Write(body)
	var sum [shareChecksumSize]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// String returns the share in its text form, "HFSHR-1-" followed by the
// lowercase unpadded base32 of threshold(1) || index(1) ||
// fingerprint(4) || share(32) || checksum(4). Call it explicitly, and only
// to show the share to its holder. The zero Share prints
// "autolock.Share(zero)".
func (s Share) String() string {
	if !s.valid {
		return "autolock.Share(zero)"
	}
	b := make([]byte, 0, shareSize+shareChecksumSize)
	b = append(b, s.threshold, s.index)
	b = append(b, s.fp[:]...)
	b = append(b, s.y[:]...)
	sum := shareChecksum(b)
	b = append(b, sum[:]...)
	return encodeText(SharePrefix, b)
}

// Format implements fmt.Formatter so that every fmt verb prints a
// redacted placeholder; only an explicit String call reveals the share.
func (s Share) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redactedShare)) }

// GoString never prints the share.
func (s Share) GoString() string { return redactedShare }

// LogValue implements slog.LogValuer: it shows the index and threshold,
// never the share.
func (s Share) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("index", s.Index()), slog.Int("threshold", s.Threshold()))
}

// Threshold returns how many distinct shares recover the key.
func (s Share) Threshold() int { return int(s.threshold) }

// Index returns the share's index, 1..255 (0 for the zero Share).
func (s Share) Index() int { return int(s.index) }

// IsZero reports whether s is the zero Share.
func (s Share) IsZero() bool { return !s.valid }

// sameSet reports whether s and o are shares of one key with one
// threshold.
func (s Share) sameSet(o Share) bool {
	return s.threshold == o.threshold && s.fp == o.fp
}

// Combine recovers the key from shares of it. It needs at least
// threshold shares with distinct indexes (duplicates of one share are
// ignored). It returns an error wrapping ErrNotEnoughShares if there are
// fewer; ErrMalformedShare for a zero Share; and ErrShareMismatch if the
// shares are of different keys or thresholds, two differ at one index, or
// the recovered key does not match their fingerprint (shares from two
// different splits of one key).
func Combine(shares []Share) (Key, error) {
	if len(shares) == 0 {
		return Key{}, fmt.Errorf("%w: none given", ErrNotEnoughShares)
	}
	var distinct []Share
	for _, sh := range shares {
		var err error
		if distinct, err = addDistinct(distinct, sh); err != nil {
			return Key{}, err
		}
	}
	return combine(distinct)
}

// addDistinct appends sh to distinct, a list of shares of one set with
// distinct indexes, unless it is already there.
func addDistinct(distinct []Share, sh Share) ([]Share, error) {
	if !sh.valid {
		return distinct, fmt.Errorf("%w: the zero Share", ErrMalformedShare)
	}
	for _, d := range distinct {
		if !d.sameSet(sh) {
			return distinct, fmt.Errorf("%w: a share of another key or threshold", ErrShareMismatch)
		}
		if d.index == sh.index {
			if subtle.ConstantTimeCompare(d.y[:], sh.y[:]) != 1 {
				return distinct, fmt.Errorf("%w: two different shares with index %d", ErrShareMismatch, sh.index)
			}
			return distinct, nil
		}
	}
	return append(distinct, sh), nil
}

// combine interpolates the first threshold of distinct, shares of one
// set with distinct indexes, and checks the key against the fingerprint.
func combine(distinct []Share) (Key, error) {
	t := int(distinct[0].threshold)
	if len(distinct) < t {
		return Key{}, fmt.Errorf("%w: %d of %d", ErrNotEnoughShares, len(distinct), t)
	}
	xs := make([]byte, t)
	ys := make([][]byte, t)
	for i, sh := range distinct[:t] {
		xs[i] = sh.index
		ys[i] = sh.y[:]
	}
	secret := combineBytes(xs, ys)
	defer clear(secret)
	fp := fingerprint(secret)
	if subtle.ConstantTimeCompare(fp[:], distinct[0].fp[:]) != 1 {
		return Key{}, fmt.Errorf("%w: the shares do not recover the key they were split from (from different splits?)", ErrShareMismatch)
	}
	var k Key
	copy(k.b[:], secret)
	k.valid = true
	return k, nil
}

// ShareSet gathers the shares of one unlock key as an operator types them
// in, one at a time. The zero ShareSet is empty and ready; it is safe for
// concurrent use and must not be copied after first use.
type ShareSet struct {
	mu     sync.Mutex
	shares []Share
	key    Key
}

// Add adds a share and returns how many distinct shares the set holds and
// how many it needs (the shares' threshold). A share already in the set is
// ignored. A share that does not belong with the ones already added (of
// another key or threshold, or different from the one at its index) is not
// added, and the error wraps ErrShareMismatch; so is the share that
// completes a set whose shares then do not recover their key (shares from
// two different splits of one key: Reset and start again). Once have >=
// need, Key returns the key.
func (s *ShareSet) Add(sh Share) (have, need int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.shares) > 0 {
		need = int(s.shares[0].threshold)
	}
	if !s.key.IsZero() {
		// Complete already: only check that sh belongs.
		_, err := addDistinct(s.shares, sh)
		return len(s.shares), need, err
	}
	shares, err := addDistinct(s.shares, sh)
	if err != nil {
		return len(s.shares), need, err
	}
	need = int(shares[0].threshold)
	if len(shares) >= need {
		k, err := combine(shares)
		if err != nil {
			return len(s.shares), need, err
		}
		s.key = k
	}
	s.shares = shares
	return len(s.shares), need, nil
}

// Key returns the recovered key once the set holds enough shares.
func (s *ShareSet) Key() (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key, !s.key.IsZero()
}

// Progress returns how many distinct shares the set holds and how many it
// needs; need is 0 before the first share.
func (s *ShareSet) Progress() (have, need int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.shares) == 0 {
		return 0, 0
	}
	return len(s.shares), int(s.shares[0].threshold)
}

// Reset empties the set, forgetting its shares and key.
func (s *ShareSet) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.shares)
	s.shares = nil
	s.key = Key{}
}
