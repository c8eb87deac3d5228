package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
	size := headerLen
	for _, c := range cmds {
		size += binary.MaxVarintLen32 + len(c)
	}
	b := make([]byte, headerLen, min(size, MaxCommandSize+binary.MaxVarintLen32))
	b[0] = envelopeFormat
	binary.BigEndian.PutUint16(b[1:3], uint16(TypeBatch))
	b[3] = (*Batch).Version(nil)
	for _, c := range cmds {
		if IsBatch(c) {
			return nil, ErrNestedBatch
		}
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
		if len(b) > MaxCommandSize {
			return nil, fmt.Errorf("encode %s: %w (over %d bytes)", TypeBatch, ErrCommandTooLarge, MaxCommandSize)
		}
	}
	return b, nil
}

// IsBatch reports whether encoded command b is a batch.
func IsBatch(b []byte) bool {
	return len(b) >= headerLen && Type(binary.BigEndian.Uint16(b[1:3])) == TypeBatch
}

// BatchSize is the size of the entry EncodeBatch makes of commands whose
// encodings are sizes bytes long in all, n of them.
func BatchSize(n, sizes int) int {
	return headerLen + n*binary.MaxVarintLen32 + sizes
}

func (b *Batch) appendPayload(h []byte) ([]byte, error) {
	for _, c := range b.Commands {
		if _, ok := c.(*Batch); ok {
			return nil, ErrNestedBatch
		}
		enc, err := Encode(c)
		if err != nil {
			return nil, err
		}
		h = binary.AppendUvarint(h, uint64(len(enc)))
		h = append(h, enc...)
	}
	if len(b.Commands) == 0 {
		return nil, errors.New("an empty batch")
	}
	return h, nil
}

func (b *Batch) decodePayload(p []byte) error {
	b.Commands = nil
	for len(p) > 0 {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > uint64(len(p)-w) {
			return fmt.Errorf("command %d: length runs past the end", len(b.Commands)+1)
		}
		if w != uvarintLen(n) {
			return fmt.Errorf("command %d: length is not minimally encoded", len(b.Commands)+1)
		}
		sub := p[w : w+int(n)]
		if IsBatch(sub) {
			return ErrNestedBatch
		}
		c, err := Decode(sub)
		if err != nil {
			return fmt.Errorf("command %d: %w", len(b.Commands)+1, err)
		}
		b.Commands = append(b.Commands, c)
		p = p[w+int(n):]
	}
	if len(b.Commands) == 0 {
		return errors.New("an empty batch")
	}
	return nil
}

func uvarintLen(n uint64) int {
	return len(binary.AppendUvarint(nil, n))
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
