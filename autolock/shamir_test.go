package autolock

import (
	"bytes"
	"io"
	"testing"
)

// gfTables builds exp and log tables of GF(2^8) from the generator 0x03,
// multiplying by x+1 as a·3 = a ^ xtime(a): an independent construction to
// check the constant-time arithmetic against.
func gfTables() (exp [255]byte, log [256]int) {
	a := byte(1)
	for i := range exp {
		exp[i] = a
		log[a] = i
		xtime := a << 1
		if a&0x80 != 0 {
			xtime ^= 0x1b
		}
		a ^= xtime
	}
	return exp, log
}

func TestGFTables(t *testing.T) {
	exp, log := gfTables()
	// The start of the AES exp table for generator 0x03 (FIPS-197 era
	// literature, e.g. the tables in "The Design of Rijndael").
	want := []byte{0x01, 0x03, 0x05, 0x0f, 0x11, 0x33, 0x55, 0xff, 0x1a, 0x2e, 0x72, 0x96, 0xa1, 0xf8, 0x13, 0x35}
	if !bytes.Equal(exp[:len(want)], want) {
		t.Fatalf("exp table: got % x; want % x", exp[:len(want)], want)
	}
	seen := map[byte]bool{}
	for _, e := range exp {
		seen[e] = true
	}
	if len(seen) != 255 || seen[0] {
		t.Fatalf("0x03 generates %d elements; want all 255 non-zero", len(seen))
	}
	if log[0x03] != 1 || log[0x05] != 2 || log[0xff] != 7 {
		t.Fatalf("log: got %d %d %d; want 1 2 7", log[0x03], log[0x05], log[0xff])
	}
}

func TestGFMulKnown(t *testing.T) {
	tests := []struct{ a, b, want byte }{
		{0x53, 0xca, 0x01}, // inverses in the AES field (FIPS-197 S-box example)
		{0x57, 0x83, 0xc1}, // FIPS-197 section 4.2
		{0x57, 0x13, 0xfe}, // FIPS-197 section 4.2.1
		{0x57, 0x02, 0xae},
		{0x57, 0x04, 0x47},
		{0x57, 0x08, 0x8e},
		{0x57, 0x10, 0x07},
		{0x03, 0x03, 0x05},
		{0x80, 0x02, 0x1b},
		{0x00, 0xff, 0x00},
		{0x01, 0xab, 0xab},
	}
	for _, tt := range tests {
		if got := gfMul(tt.a, tt.b); got != tt.want {
			t.Errorf("%#02x·%#02x: got %#02x; want %#02x", tt.a, tt.b, got, tt.want)
		}
		if got := gfMul(tt.b, tt.a); got != tt.want {
			t.Errorf("%#02x·%#02x: got %#02x; want %#02x", tt.b, tt.a, got, tt.want)
		}
	}
	invs := []struct{ a, want byte }{{0x53, 0xca}, {0xca, 0x53}, {0x01, 0x01}, {0x02, 0x8d}, {0x03, 0xf6}, {0x00, 0x00}}
	for _, tt := range invs {
		if got := gfInv(tt.a); got != tt.want {
			t.Errorf("inverse of %#02x: got %#02x; want %#02x", tt.a, got, tt.want)
		}
	}
}

// TestGFExhaustive checks every product and inverse against the tables.
func TestGFExhaustive(t *testing.T) {
	exp, log := gfTables()
	for a := range 256 {
		for b := range 256 {
			want := byte(0)
			if a != 0 && b != 0 {
				want = exp[(log[a]+log[b])%255]
			}
			if got := gfMul(byte(a), byte(b)); got != want {
				t.Fatalf("%#02x·%#02x: got %#02x; want %#02x", a, b, got, want)
			}
		}
		if a == 0 {
			continue
		}
		inv := gfInv(byte(a))
		if want := exp[(255-log[a])%255]; inv != want {
			t.Fatalf("inverse of %#02x: got %#02x; want %#02x", a, inv, want)
		}
		if gfMul(byte(a), inv) != 1 {
			t.Fatalf("%#02x·inverse != 1", a)
		}
	}
}

// coeffReader yields fixed bytes as "random" coefficients.
type coeffReader struct{ b []byte }

func (r *coeffReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestShamirKnownVectors: hand-computed splits of one byte.
//
// threshold 2, secret 0x2a, a1 = 0x03: p(x) = 0x2a + 3x, so
// p(1) = 0x2a^0x03 = 0x29, p(2) = 0x2a^0x06 = 0x2c, p(3) = 0x2a^(3·3 = 0x05) = 0x2f.
//
// threshold 3, secret 0x01, a1 = 0x02, a2 = 0x03: p(x) = 1 + 2x + 3x², so
// p(1) = 1^2^3 = 0x00; p(2) = 1^(2·2 = 4)^(3·4 = 0x0c) = 0x09;
// p(3) = 1^(2·3 = 6)^(3·(3·3 = 5) = 0x0f) = 0x08; p(4) = 1^8^(3·0x10 = 0x30) = 0x39.
func TestShamirKnownVectors(t *testing.T) {
	tests := []struct {
		secret    byte
		coeffs    []byte
		threshold int
		want      []byte
	}{
		{0x2a, []byte{0x03}, 2, []byte{0x29, 0x2c, 0x2f}},
		{0x01, []byte{0x02, 0x03}, 3, []byte{0x00, 0x09, 0x08, 0x39}},
	}
	for _, tt := range tests {
		ys, err := splitBytes([]byte{tt.secret}, len(tt.want), tt.threshold, &coeffReader{tt.coeffs})
		if err != nil {
			t.Fatal(err)
		}
		for i, y := range ys {
			if y[0] != tt.want[i] {
				t.Errorf("secret %#02x: share at x=%d: got %#02x; want %#02x", tt.secret, i+1, y[0], tt.want[i])
			}
		}
		// Every threshold-subset interpolates back to the secret.
		forEachSubset(len(tt.want), tt.threshold, func(idx []int) {
			xs := make([]byte, len(idx))
			pts := make([][]byte, len(idx))
			for i, j := range idx {
				xs[i], pts[i] = byte(j+1), []byte{tt.want[j]}
			}
			if got := combineBytes(xs, pts); got[0] != tt.secret {
				t.Errorf("points %v: got %#02x; want %#02x", xs, got[0], tt.secret)
			}
		})
	}
	if _, err := splitBytes([]byte{1}, 3, 2, &coeffReader{}); err == nil {
		t.Fatal("split with a failing randomness source: got no error")
	}
}

// forEachSubset calls f with every k-subset of 0..n-1, in order.
func forEachSubset(n, k int, f func([]int)) {
	idx := make([]int, k)
	var rec func(start, depth int)
	rec = func(start, depth int) {
		if depth == k {
			f(idx)
			return
		}
		for i := start; i <= n-(k-depth); i++ {
			idx[depth] = i
			rec(i+1, depth+1)
		}
	}
	rec(0, 0)
}

// TestShamirPerfectSecrecy: for a 1-byte secret, threshold-1 shares reveal
// nothing. For every secret, as the random coefficients range over all
// values, every possible tuple of threshold-1 share values occurs exactly
// once; so any shares seen are consistent with every secret, each by
// exactly one polynomial, and their distribution does not depend on the
// secret.
func TestShamirPerfectSecrecy(t *testing.T) {
	tests := []struct {
		threshold int
		xs        []byte // the threshold-1 indexes the adversary holds
	}{
		{2, []byte{1}},
		{2, []byte{2}},
		{2, []byte{255}},
		{3, []byte{1, 2}},
		{3, []byte{3, 200}},
	}
	for _, tt := range tests {
		secrets := 256
		if testing.Short() && tt.threshold > 2 {
			secrets = 8
		}
		for s := range secrets {
			counts := make([]uint8, 1<<(8*len(tt.xs)))
			coeffs := make([]byte, tt.threshold)
			coeffs[0] = byte(s)
			for r := range 1 << (8 * (tt.threshold - 1)) {
				for i := 1; i < tt.threshold; i++ {
					coeffs[i] = byte(r >> (8 * (i - 1)))
				}
				tuple := 0
				for _, x := range tt.xs {
					tuple = tuple<<8 | int(evalPoly(coeffs, x))
				}
				counts[tuple]++
			}
			for tuple, c := range counts {
				if c != 1 {
					t.Fatalf("threshold %d, indexes %v, secret %#02x: share values %#x occur %d times; want 1", tt.threshold, tt.xs, s, tuple, c)
				}
			}
		}
	}
}

// TestShamirThresholdSubsets: with random coefficients, every
// threshold-subset recovers the key and no smaller one does.
func TestShamirThresholdSubsets(t *testing.T) {
	tests := []struct{ n, threshold int }{
		{2, 2}, {3, 2}, {3, 3}, {5, 3}, {6, 4}, {7, 7}, {10, 5},
	}
	for _, tt := range tests {
		k := NewKey()
		shares, err := Split(k, tt.n, tt.threshold)
		if err != nil {
			t.Fatal(err)
		}
		if len(shares) != tt.n {
			t.Fatalf("got %d shares; want %d", len(shares), tt.n)
		}
		for i, sh := range shares {
			if sh.Index() != i+1 || sh.Threshold() != tt.threshold {
				t.Fatalf("share %d: index %d threshold %d; want %d, %d", i, sh.Index(), sh.Threshold(), i+1, tt.threshold)
			}
			if bytes.Equal(sh.y[:], k.b[:]) {
				t.Fatal("a share is the key")
			}
		}
		forEachSubset(tt.n, tt.threshold, func(idx []int) {
			sub := make([]Share, len(idx))
			for i, j := range idx {
				sub[i] = shares[j]
			}
			got, err := Combine(sub)
			if err != nil || !got.Equal(k) {
				t.Fatalf("%d-of-%d, shares %v: got err %v", tt.threshold, tt.n, idx, err)
			}
		})
		forEachSubset(tt.n, tt.threshold-1, func(idx []int) {
			sub := make([]Share, 0, len(idx)+1)
			for _, j := range idx {
				sub = append(sub, shares[j])
			}
			if len(sub) > 0 {
				sub = append(sub, sub[0]) // a duplicate does not count
			}
			if got, err := Combine(sub); err == nil || !got.IsZero() {
				t.Fatalf("%d-of-%d, only shares %v: combined", tt.threshold, tt.n, idx)
			}
		})
	}
}

func TestShamirLarge(t *testing.T) {
	k := NewKey()
	shares, err := Split(k, 255, 255)
	if err != nil {
		t.Fatal(err)
	}
	// Reversed order: order does not matter.
	rev := make([]Share, len(shares))
	for i, sh := range shares {
		rev[len(shares)-1-i] = sh
	}
	if got, err := Combine(rev); err != nil || !got.Equal(k) {
		t.Fatalf("255-of-255: %v", err)
	}
	if _, err := Combine(rev[1:]); err == nil {
		t.Fatal("254 of 255-of-255 combined")
	}
	shares, err = Split(k, 255, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Combine([]Share{shares[254], shares[0]}); err != nil || !got.Equal(k) {
		t.Fatalf("2-of-255 with indexes 255 and 1: %v", err)
	}
}
