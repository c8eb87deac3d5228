package autolock

import (
	"encoding/base32"
	"fmt"
	"strings"
)

// alphabet is RFC 4648 base32 in lower case. Keys and shares are written
// with it and no padding; parsing also accepts upper case.
const alphabet = "abcdefghijklmnopqrstuvwxyz234567"

var b32 = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

// encodeText returns prefix followed by payload in lowercase base32.
func encodeText(prefix string, payload []byte) string {
	return prefix + b32.EncodeToString(payload)
}

// decodeText parses prefix || base32(n bytes) after trimming surrounding
// white space. A wrong prefix, length or character is malformed; an
// encoding whose unused low bits are not zero is ErrMistyped (only a
// changed last character can do that). Errors never include s.
func decodeText(s, prefix string, n int, malformed error) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) < len(prefix) || !asciiEqualFold(s[:len(prefix)], prefix) {
		return nil, fmt.Errorf("%w: it does not start with %s", malformed, prefix)
	}
	body := s[len(prefix):]
	if want := b32.EncodedLen(n); len(body) != want {
		return nil, fmt.Errorf("%w: %d characters after %s; want %d", malformed, len(body), prefix, want)
	}
	lower := make([]byte, len(body))
	for i := 0; i < len(body); i++ {
		c := body[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return nil, fmt.Errorf("%w: character %d after %s is not one of a-z, 2-7", malformed, i+1, prefix)
		}
		lower[i] = c
	}
	// The last character carries len(body)*5 - n*8 unused low bits, which
	// an encoder sets to zero. Non-zero bits would make a second spelling
	// of the same bytes, so they are refused as a typo.
	if unused := len(body)*5 - n*8; unused > 0 {
		last := strings.IndexByte(alphabet, lower[len(lower)-1])
		if last&(1<<unused-1) != 0 {
			return nil, fmt.Errorf("%w: the last character cannot end a valid %s", ErrMistyped, prefix)
		}
	}
	out := make([]byte, n)
	if m, err := b32.Decode(out, lower); err != nil || m != n {
		// Unreachable: length and alphabet were checked above.
		return nil, fmt.Errorf("%w: undecodable", malformed)
	}
	return out, nil
}

// asciiEqualFold is strings.EqualFold for ASCII only, so no Unicode
// folding (such as the Kelvin sign for K) lets a second spelling through.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
