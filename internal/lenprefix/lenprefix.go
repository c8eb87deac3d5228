// Package lenprefix frames a list of byte strings, each preceded by its
// length:
//
//	uvarint(len(p1)) || p1 || uvarint(len(p2)) || p2 || ...
//
// It is the framing of a forwarded batch's body (api, apply-batch) and of
// a batch log entry's payload (fsm, TypeBatch).
package lenprefix

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTooMany is Split's error for a list over its limit.
var ErrTooMany = errors.New("too many items")

// Append appends the framing of parts to b.
func Append(b []byte, parts [][]byte) []byte {
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// Size is the most bytes Append adds for n parts of sizes bytes in all.
func Size(n, sizes int) int {
	return n*binary.MaxVarintLen32 + sizes
}

// Split returns the parts framed in b, which alias b. A length that runs
// past the end, or that is not minimally encoded (so that Append of what
// Split returns gives b back), is an error; so is a list of more than max
// parts (ErrTooMany), when max > 0. An empty b is an empty list.
func Split(b []byte, max int) ([][]byte, error) {
	var parts [][]byte
	for len(b) > 0 {
		if max > 0 && len(parts) == max {
			return nil, fmt.Errorf("%w: more than %d", ErrTooMany, max)
		}
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return nil, fmt.Errorf("item %d runs past the end", len(parts)+1)
		}
		if w != len(binary.AppendUvarint(nil, n)) {
			return nil, fmt.Errorf("item %d's length is not minimally encoded", len(parts)+1)
		}
		parts = append(parts, b[w:w+int(n)])
		b = b[w+int(n):]
	}
	return parts, nil
}
