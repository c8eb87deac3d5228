package api

import (
	"errors"

	"github.com/holdfast/holdfast/internal/lenprefix"
)

// The body of POST /internal/v1/apply-batch is the commands one after the
// other, each as uvarint(length) || command (internal/lenprefix).
const (
	// MaxApplyBatchBody bounds a batch's body.
	MaxApplyBatchBody = 8 << 20
	// MaxApplyBatch bounds how many commands a batch holds.
	MaxApplyBatch = 1024
)

// AppendApplyBatch appends the batch body of cmds to b.
func AppendApplyBatch(b []byte, cmds [][]byte) []byte {
	return lenprefix.Append(b, cmds)
}

// ParseApplyBatch splits a batch body into its commands, which alias body.
// Errors are *Error with status 400 or 413.
func ParseApplyBatch(body []byte) ([][]byte, error) {
	if len(body) > MaxApplyBatchBody {
		return nil, Errorf(CodeTooLarge, "batch is over %d bytes", MaxApplyBatchBody)
	}
	cmds, err := lenprefix.Split(body, MaxApplyBatch)
	switch {
	case errors.Is(err, lenprefix.ErrTooMany):
		return nil, Errorf(CodeTooLarge, "batch holds over %d commands", MaxApplyBatch)
	case err != nil:
		return nil, Errorf(CodeInvalidArgument, "malformed batch: %v", err)
	case len(cmds) == 0:
		return nil, Errorf(CodeInvalidArgument, "empty batch")
	}
	return cmds, nil
}
