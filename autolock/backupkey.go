package autolock

import (
	"crypto/hkdf"
	"crypto/sha256"

	"github.com/holdfast/holdfast/internal/seal"
)

// backupInfo separates backup keys from the KEK and every other key
// derived from an unlock key.
const backupInfo = "holdfast/backup key v1"

// BackupKey returns the key that seals a backup made under this unlock
// key: HKDF-SHA256(ikm = key, salt = salt, info = "holdfast/backup key v1"),
// 32 bytes. The label differs from the KEK's, so a backup key never wraps
// or opens a node's files, and the per-backup random salt gives every
// backup its own key. It panics on the zero Key.
func (k Key) BackupKey(salt []byte) seal.Key {
	k.mustValid()
	b, err := hkdf.Key(sha256.New, k.b[:], salt, backupInfo, seal.KeySize)
	if err != nil {
		panic("autolock: hkdf: " + err.Error()) // unreachable: 32 bytes of HKDF-SHA256
	}
	key, err := seal.ParseKey(b)
	if err != nil {
		panic("autolock: " + err.Error()) // unreachable: the length is fixed
	}
	clear(b)
	return key
}
