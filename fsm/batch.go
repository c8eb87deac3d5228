package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/holdfast/holdfast/internal/lenprefix"
)

// TypeBatch is several commands proposed as one log entry. The leader
// gathers the writes that arrive while earlier ones are still being
// committed into one entry, so that raft seals, stores, replicates and
// hands the FSM one entry where it would have handled many: most of what
// raft does for an entry costs the same for one command as for a hundred.
//
// A batch is not a transaction. Its commands apply one after the other,
// exactly as if each had been an entry of its own at the same place in
// the log, and each has its own result (Result.Batch).
//
// Payload (version 1): each command's own encoding (envelope included),
// each preceded by its length:
//
//	uvarint(len(c1)) || c1 || uvarint(len(c2)) || c2 || ...
//
// A batch holds at least one command and no batch; the whole entry is at
// most MaxCommandSize.
const TypeBatch Type = 30

// ErrNestedBatch is a batch inside a batch, which no writer makes.
var ErrNestedBatch = errors.New("a batch inside a batch")

// Batch is a TypeBatch command, decoded.
type Batch struct {
	Commands []Command
}

func (*Batch) Type() Type     { return TypeBatch }
func (*Batch) Version() uint8 { return 1 }

// EncodeBatch makes one log entry of encoded commands (each from Encode),
// or returns ErrCommandTooLarge if they do not fit in one.
func EncodeBatch(cmds [][]byte) ([]byte, error) {
	if len(cmds) == 0 {
		return nil, fmt.Errorf("%w: an empty batch", ErrMalformedCommand)
	}
	sizes := 0
	for _, c := range cmds {
		if IsBatch(c) {
			return nil, ErrNestedBatch
		}
		sizes += len(c)
	}
	b := lenprefix.Append(envelopeHeader(TypeBatch, (*Batch).Version(nil), BatchSize(len(cmds), sizes)), cmds)
	if len(b) > MaxCommandSize {
		return nil, fmt.Errorf("encode %s: %w (%d bytes, limit %d)", TypeBatch, ErrCommandTooLarge, len(b), MaxCommandSize)
	}
	return b, nil
}

// IsBatch reports whether encoded command b is a batch.
func IsBatch(b []byte) bool {
	return len(b) >= headerLen && Type(binary.BigEndian.Uint16(b[1:3])) == TypeBatch
}

// BatchSize bounds the size of the entry EncodeBatch makes of n commands
// whose encodings are sizes bytes long in all.
func BatchSize(n, sizes int) int {
	return headerLen + lenprefix.Size(n, sizes)
}

func (b *Batch) appendPayload(h []byte) ([]byte, error) {
	if len(b.Commands) == 0 {
		return nil, errors.New("an empty batch")
	}
	encs := make([][]byte, len(b.Commands))
	for i, c := range b.Commands {
		if _, ok := c.(*Batch); ok {
			return nil, ErrNestedBatch
		}
		var err error
		if encs[i], err = Encode(c); err != nil {
			return nil, err
		}
	}
	return lenprefix.Append(h, encs), nil
}

func (b *Batch) decodePayload(p []byte) error {
	parts, err := lenprefix.Split(p, 0)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return errors.New("an empty batch")
	}
	b.Commands = make([]Command, len(parts))
	for i, sub := range parts {
		if IsBatch(sub) {
			return ErrNestedBatch
		}
		if b.Commands[i], err = Decode(sub); err != nil {
			return fmt.Errorf("command %d: %w", i+1, err)
		}
	}
	return nil
}

// MarshalJSON is how tools show a batch: each command's type and body.
func (b *Batch) MarshalJSON() ([]byte, error) {
	type described struct {
		Command string  `json:"command"`
		Body    Command `json:"body"`
	}
	out := struct {
		Commands []described `json:"commands"`
	}{Commands: make([]described, len(b.Commands))}
	for i, c := range b.Commands {
		out.Commands[i] = described{Command: c.Type().String(), Body: c}
	}
	return json.Marshal(out)
}
