package secrets

import (
	"sort"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits. They are part of the replicated rules: changing one changes which
// commands apply, so every manager of a cluster must agree on them.
const (
	// MaxNameLen is the longest secret name (and ID), in bytes.
	MaxNameLen = 64
	// MaxSize is the largest secret, in bytes (inclusive).
	MaxSize = 500 * 1024
	// MaxLabels is the most labels one secret can have.
	MaxLabels = 64
	// MaxLabelKeyLen is the longest label key, in bytes.
	MaxLabelKeyLen = 128
	// MaxLabelValueLen is the longest label value, in bytes.
	MaxLabelValueLen = 1024
	// MaxNodeIDLen is the longest node ID a grant accepts, in bytes.
	MaxNodeIDLen = 128
)

// ValidateName checks a secret name: 1 to MaxNameLen characters of
// [a-zA-Z0-9._-], the first one a letter or digit. Names are also file names
// on granted nodes, so the rule keeps out "/", "..", hidden files and
// anything a shell would need to quote.
func ValidateName(name string) error {
	if !validToken(name, MaxNameLen, isNameByte) {
		return errorf(ErrInvalidName, "invalid secret name %q: want 1 to %d of [a-zA-Z0-9._-], starting with a letter or digit", name, MaxNameLen)
	}
	return nil
}

// ValidateID checks a secret ID with the same rule as names (1 to MaxNameLen
// of [a-zA-Z0-9._-], starting alphanumeric). IDs come from the leader, not
// from users; the rule only keeps them printable and bounded.
func ValidateID(id string) error {
	if !validToken(id, MaxNameLen, isNameByte) {
		return errorf(ErrInvalidID, "invalid secret ID %q", id)
	}
	return nil
}

// ValidateData checks a secret's size: 1 to MaxSize bytes inclusive. It
// never looks at the content.
func ValidateData(data []byte) error {
	switch {
	case len(data) == 0:
		return ErrEmpty
	case len(data) > MaxSize:
		return errorf(ErrTooLarge, "secret data is %d bytes, more than the limit of %d (500 KiB)", len(data), MaxSize)
	}
	return nil
}

// ValidateLabels checks a label set: at most MaxLabels labels; each key 1 to
// MaxLabelKeyLen characters of [a-zA-Z0-9._/-], the first a letter or digit;
// each value at most MaxLabelValueLen bytes of valid UTF-8 with no control
// characters (unicode.IsControl: C0, DEL and C1). Values may be empty. A nil
// or empty map is valid (no labels).
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return errorf(ErrInvalidLabel, "%d labels, more than the limit of %d", len(labels), MaxLabels)
	}
	// Sorted, so that the error for a set with several bad labels is the
	// same on every replica.
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !validToken(k, MaxLabelKeyLen, isLabelKeyByte) {
			return errorf(ErrInvalidLabel, "invalid label key %q: want 1 to %d of [a-zA-Z0-9._/-], starting with a letter or digit", k, MaxLabelKeyLen)
		}
		v := labels[k]
		if len(v) > MaxLabelValueLen {
			return errorf(ErrInvalidLabel, "label %q: value is %d bytes, more than the limit of %d", k, len(v), MaxLabelValueLen)
		}
		if !utf8.ValidString(v) {
			return errorf(ErrInvalidLabel, "label %q: value is not valid UTF-8", k)
		}
		for _, r := range v {
			if unicode.IsControl(r) {
				return errorf(ErrInvalidLabel, "label %q: value contains control character %U", k, r)
			}
		}
	}
	return nil
}

// validNodeID is the syntactic check on node IDs in grants: 1 to
// MaxNodeIDLen of [a-zA-Z0-9._-], starting alphanumeric. Whether the node
// exists is the caller's question (nodeExists).
func validNodeID(id string) bool {
	return validToken(id, MaxNodeIDLen, isNameByte)
}

// validTime reports whether t, in UTC, can be written as RFC 3339 (years 0
// to 9999), which JSON snapshots need.
func validTime(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return errorf(ErrMalformed, "time %s is outside years 0 to 9999", t.UTC().Format(time.RFC3339))
	}
	return nil
}

// normTime is t in UTC without a monotonic reading, so that the same
// instant compares equal however it arrived (command, snapshot, clock).
func normTime(t time.Time) time.Time {
	return t.UTC().Round(0)
}

func validToken(s string, maxLen int, ok func(byte) bool) bool {
	if len(s) == 0 || len(s) > maxLen || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isNameByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '-'
}

func isLabelKeyByte(c byte) bool {
	return isNameByte(c) || c == '/'
}

// normGrants returns grants sorted, without duplicates, or an
// ErrUnknownNode error for a malformed node ID. The result is nil when there
// are no grants.
func normGrants(grants []string) ([]string, error) {
	if len(grants) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(grants))
	for _, g := range grants {
		if !validNodeID(g) {
			return nil, errorf(ErrUnknownNode, "invalid node ID %q in grants", g)
		}
		out = append(out, g)
	}
	sort.Strings(out)
	w := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[w-1] {
			out[w] = out[i]
			w++
		}
	}
	return out[:w], nil
}

// checkGrants checks that grants is already in canonical form (what
// normGrants returns).
func checkGrants(grants []string) error {
	for i, g := range grants {
		if !validNodeID(g) {
			return errorf(ErrUnknownNode, "invalid node ID %q in grants", g)
		}
		if i > 0 && grants[i-1] >= g {
			return errorf(ErrMalformed, "grants are not sorted and unique at %q", g)
		}
	}
	return nil
}

// copyLabels returns a copy of labels, nil when there are none.
func copyLabels(labels map[string]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		out[k] = v
	}
	return out
}
