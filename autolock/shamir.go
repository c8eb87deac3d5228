package autolock

import (
	"fmt"
	"io"
)

// Shamir's secret sharing over GF(2^8), one byte of the secret at a time.
// The field is the AES field: polynomial x^8 + x^4 + x^3 + x + 1 (0x11b).
// Multiplication and inversion run in constant time (no tables indexed by
// secret bytes, no branches on them).

// gfMul returns a·b in GF(2^8).
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a       // add a if the low bit of b is set
		a = a<<1 ^ -(a>>7)&0x1b // a·x, reduced by 0x11b
		b >>= 1
	}
	return p
}

// gfInv returns the multiplicative inverse of a, a^254; gfInv(0) is 0.
func gfInv(a byte) byte {
	// a^254 = a^2 · a^4 · a^8 · a^16 · a^32 · a^64 · a^128.
	r := byte(1)
	sq := a
	for range 7 {
		sq = gfMul(sq, sq)
		r = gfMul(r, sq)
	}
	return r
}

// evalPoly returns coeffs[0] + coeffs[1]·x + ... (Horner).
func evalPoly(coeffs []byte, x byte) byte {
	var y byte
	for i := len(coeffs) - 1; i >= 0; i-- {
		y = gfMul(y, x) ^ coeffs[i]
	}
	return y
}

// splitBytes shares secret among n points x = 1..n so that any threshold
// of them recover it: for every byte, a polynomial of degree threshold-1
// whose constant term is that byte and whose other coefficients are read
// from rnd. It returns ys[i] = the share at x = i+1. The caller checks
// 1 <= threshold <= n <= 255.
func splitBytes(secret []byte, n, threshold int, rnd io.Reader) ([][]byte, error) {
	ys := make([][]byte, n)
	for i := range ys {
		ys[i] = make([]byte, len(secret))
	}
	coeffs := make([]byte, threshold)
	defer clear(coeffs)
	for j, s := range secret {
		coeffs[0] = s
		if _, err := io.ReadFull(rnd, coeffs[1:]); err != nil {
			return nil, fmt.Errorf("autolock: read random coefficients: %w", err)
		}
		for i := range ys {
			ys[i][j] = evalPoly(coeffs, byte(i+1))
		}
	}
	return ys, nil
}

// combineBytes interpolates at x = 0 the polynomial through the points
// (xs[i], ys[i]), byte by byte. The xs must be distinct and non-zero, and
// all ys the same length.
func combineBytes(xs []byte, ys [][]byte) []byte {
	// Lagrange basis at 0: l_i = Π_{j≠i} x_j / (x_j - x_i); in GF(2^8)
	// subtraction is xor. The xs are public; only the ys are secret.
	basis := make([]byte, len(xs))
	for i, xi := range xs {
		num, den := byte(1), byte(1)
		for j, xj := range xs {
			if j != i {
				num = gfMul(num, xj)
				den = gfMul(den, xj^xi)
			}
		}
		basis[i] = gfMul(num, gfInv(den))
	}
	out := make([]byte, len(ys[0]))
	for k := range out {
		var s byte
		for i, y := range ys {
			s ^= gfMul(y[k], basis[i])
		}
		out[k] = s
	}
	return out
}
