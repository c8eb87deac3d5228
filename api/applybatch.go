package api

import (
	"encoding/binary"
	"net/http"
)

// The body of POST /internal/v1/apply-batch is the commands one after the
// other, each as uvarint(length) || command.
const (
	// MaxApplyBatchBody bounds a batch's body.
	MaxApplyBatchBody = 8 << 20
	// MaxApplyBatch bounds how many commands a batch holds.
	MaxApplyBatch = 1024
)

// AppendApplyBatch appends the batch body of cmds to b.
func AppendApplyBatch(b []byte, cmds [][]byte) []byte {
	for _, c := range cmds {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b
}

// ParseApplyBatch splits a batch body into its commands, which alias body.
// Errors are *Error with status 400 or 413.
func ParseApplyBatch(body []byte) ([][]byte, error) {
	if len(body) > MaxApplyBatchBody {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "batch is over %d bytes", MaxApplyBatchBody)
	}
	var cmds [][]byte
	for len(body) > 0 {
		if len(cmds) == MaxApplyBatch {
			return nil, Errorf(http.StatusRequestEntityTooLarge, "batch holds over %d commands", MaxApplyBatch)
		}
		n, w := binary.Uvarint(body)
		if w <= 0 || n > uint64(len(body)-w) {
			return nil, Errorf(http.StatusBadRequest, "malformed batch: command %d runs past the end", len(cmds)+1)
		}
		if w != len(binary.AppendUvarint(nil, n)) {
			return nil, Errorf(http.StatusBadRequest, "malformed batch: command %d's length is not minimally encoded", len(cmds)+1)
		}
		cmds = append(cmds, body[w:w+int(n)])
		body = body[w+int(n):]
	}
	if len(cmds) == 0 {
		return nil, Errorf(http.StatusBadRequest, "empty batch")
	}
	return cmds, nil
}
