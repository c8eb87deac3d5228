package autolock

import "errors"

// Errors returned by this package. Check them with errors.Is. No error
// from this package contains the text it was given to parse.
var (
	// ErrMistyped means a key or share has the right form (prefix, length,
	// alphabet) but its checksum does not match: a typo, not a wrong key.
	ErrMistyped = errors.New("autolock: checksum mismatch (a typo?)")
	// ErrMalformedKey means a string is not an unlock key at all: wrong
	// prefix, length or characters.
	ErrMalformedKey = errors.New("autolock: not an unlock key")
	// ErrInvalidKey means an envelope does not open under the KEK it was
	// given: the unlock key is the wrong one (or the envelope belongs to
	// another node or purpose). Callers report it as "invalid unlock key".
	ErrInvalidKey = errors.New("autolock: invalid unlock key")
	// ErrNotWrapped means bytes given to Unwrap are not an envelope (they do
	// not start with the envelope magic), such as a key file written
	// without autolock.
	ErrNotWrapped = errors.New("autolock: not a wrapped key")
	// ErrMalformedEnvelope means bytes start like an envelope but its header
	// is damaged, truncated, or of an unknown version.
	ErrMalformedEnvelope = errors.New("autolock: malformed envelope")
	// ErrMalformedShare means a string is not an unlock key share: wrong
	// prefix, length, characters, threshold or index.
	ErrMalformedShare = errors.New("autolock: not an unlock key share")
	// ErrShareMismatch means shares do not belong together: they are of
	// different keys or thresholds, disagree about one index, or (from two
	// different splits of one key) combine to a key that fails its
	// fingerprint.
	ErrShareMismatch = errors.New("autolock: shares do not belong to the same unlock key")
	// ErrNotEnoughShares means Combine was given fewer distinct shares than
	// their threshold.
	ErrNotEnoughShares = errors.New("autolock: not enough shares")
	// ErrSplitParameters means Split was asked for something other than
	// 2 <= threshold <= n <= 255.
	ErrSplitParameters = errors.New("autolock: want 2 <= threshold <= shares <= 255")
)
