package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// SnapshotData returns the snapshot document (the bytes Snapshot persists)
// of the state as of the last applied entry, and that entry's index. The
// copy is taken under the read lock, so it is one consistent point.
//
// Only copies are made under the lock (as in Snapshot); the document, in
// format 1, is encoded after, so a backup of a large state does not hold
// up Apply.
func (f *FSM) SnapshotData() ([]byte, uint64, error) {
	f.mu.RLock()
	header, frozen, err := f.freezeLocked(snapshotFormat)
	index := f.index
	f.mu.RUnlock()
	if err != nil {
		return nil, 0, err
	}
	var doc snapshotDoc
	if err := json.Unmarshal(header, &doc); err != nil {
		return nil, 0, fmt.Errorf("snapshot state: %w", err)
	}
	doc.State.Secrets = *frozen
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot state: %w", err)
	}
	return b, index, nil
}

// SnapshotJSON turns a snapshot of either format into the format 1 JSON
// document, for tools that show it.
func SnapshotJSON(b []byte) ([]byte, error) {
	st, index, err := decodeSnapshot(b)
	if err != nil {
		return nil, err
	}
	return EncodeSnapshot(st, index)
}

// DecodeSnapshot parses a snapshot document, as Restore does, and returns
// its state and index without touching any FSM.
func DecodeSnapshot(b []byte) (*State, uint64, error) {
	return decodeSnapshot(b)
}

// EncodeSnapshot is the snapshot document of s at index.
func EncodeSnapshot(s *State, index uint64) ([]byte, error) {
	return json.Marshal(snapshotDoc{Format: snapshotFormat, Index: index, State: s})
}

// Redacted is what RedactJSON puts in place of a secret value.
const Redacted = "<redacted>"

// secretFields are the JSON field names whose values are secret in any
// command or in the state: secret data, the CA key, join tokens, the
// unlock key and data-plane key material. A field added to a command or the state that holds a secret
// must be named here (TestRedactEveryCommand checks the known ones).
var secretFields = map[string]bool{
	"data":          true,
	"root_key_pem":  true,
	"worker_token":  true,
	"manager_token": true,
	"token":         true,
	"unlock_key":    true,
	"material":      true, // overlaykeys.Key: gossip and IPsec keys
}

// RedactJSON returns the JSON document b with the value of every secret
// field, at any depth, replaced by Redacted.
func RedactJSON(b []byte) (json.RawMessage, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(redact(v)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

func redact(v any) any {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if secretFields[k] && v[k] != nil && v[k] != "" {
				v[k] = Redacted
				continue
			}
			v[k] = redact(v[k])
		}
		return v
	case []any:
		for i := range v {
			v[i] = redact(v[i])
		}
		return v
	}
	return v
}

// Describe decodes log data for tools: the command's type name and its
// JSON body. Data this build cannot decode gives the error.
func Describe(b []byte) (name string, body json.RawMessage, err error) {
	c, err := Decode(b)
	if err != nil {
		return "", nil, err
	}
	body, err = json.Marshal(c)
	return c.Type().String(), body, err
}
