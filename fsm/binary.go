package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"

	"github.com/holdfast/holdfast/internal/strictjson"
)

// secret.create version 2: a secret's data is most of the command, and
// base64 inside JSON made every manager's FSM scan it twice on every
// create. The payload is the JSON of everything but the data, then the
// data as it is:
//
//	uvarint(len(json)) || json (with "data" absent) || data
//
// Version 1 (all JSON, data in base64) still decodes, for logs written
// before.

// secretCreateMeta is SecretCreate's JSON in version 2: the same fields
// without Data, which must not appear.
type secretCreateMeta struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Grants    []string          `json:"grants,omitempty"`
	CreatedAt json.RawMessage   `json:"created_at"`
}

func (c *SecretCreate) appendPayload(b []byte) ([]byte, error) {
	created, err := c.CreatedAt.MarshalJSON()
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(secretCreateMeta{ID: c.ID, Name: c.Name, Labels: c.Labels, Grants: c.Grants, CreatedAt: created})
	if err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, uint64(len(meta)))
	b = append(b, meta...)
	return append(b, c.Data...), nil
}

func (c *SecretCreate) decodePayload(p []byte) error {
	n, w := binary.Uvarint(p)
	if w <= 0 || n > uint64(len(p)-w) {
		return errors.New("metadata length runs past the end")
	}
	var meta secretCreateMeta
	if err := strictjson.Unmarshal(p[w:w+int(n)], &meta); err != nil {
		return err
	}
	*c = SecretCreate{}
	c.ID, c.Name, c.Labels, c.Grants = meta.ID, meta.Name, meta.Labels, meta.Grants
	if err := c.CreatedAt.UnmarshalJSON(meta.CreatedAt); err != nil {
		return err
	}
	// A copy: the command's bytes belong to raft's log.
	c.Data = bytes.Clone(p[w+int(n):])
	return nil
}
