package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/holdfast/holdfast/internal/atomicfile"
	"github.com/holdfast/holdfast/internal/dirsync"
	"github.com/holdfast/holdfast/internal/seal"
)

// Keyring is the set of DEKs: one current key that seals new records and
// any older keys still needed to open records sealed before a rotation.
// It is safe for concurrent use. A Store and the SnapshotStore of the same
// node share one Keyring.
type Keyring struct {
	mu      sync.RWMutex
	current seal.Key
	others  []seal.Key
}

// NewKeyring returns a keyring sealing with current and also opening with
// others. Duplicates of current among others are ignored.
func NewKeyring(current seal.Key, others ...seal.Key) *Keyring {
	r := &Keyring{}
	r.set(KeyFile{Current: current, Previous: others})
	return r
}

// Current returns the key that seals new records.
func (r *Keyring) Current() seal.Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// Lookup returns the key with the given ID, current or older.
func (r *Keyring) Lookup(id seal.KeyID) (seal.Key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.current.ID() == id {
		return r.current, true
	}
	for _, k := range r.others {
		if k.ID() == id {
			return k, true
		}
	}
	return seal.Key{}, false
}

// KeyFile returns the keyring's contents, for SaveKeyFile.
func (r *Keyring) KeyFile() KeyFile {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return KeyFile{Current: r.current, Previous: append([]seal.Key(nil), r.others...)}
}

// set replaces the keyring's contents.
func (r *Keyring) set(kf KeyFile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current = kf.Current
	r.others = nil
	for _, k := range kf.Previous {
		if k.Equal(kf.Current) || containsKey(r.others, k) {
			continue
		}
		r.others = append(r.others, k)
	}
}

func containsKey(ks []seal.Key, k seal.Key) bool {
	for _, o := range ks {
		if o.Equal(k) {
			return true
		}
	}
	return false
}

// KeyFile is the contents of <data-dir>/keys: the current DEK and the
// previous DEKs that a rotation in progress still needs.
type KeyFile struct {
	Current  seal.Key
	Previous []seal.Key
}

// Keyring returns a new Keyring holding kf's keys.
func (kf KeyFile) Keyring() *Keyring { return NewKeyring(kf.Current, kf.Previous...) }

// Validate reports whether kf can be marshalled: a real current key, at
// most MaxPreviousKeys previous keys, no duplicates.
func (kf KeyFile) Validate() error {
	if kf.Current.IsZero() {
		return fmt.Errorf("%w: no current key", ErrKeyFile)
	}
	if len(kf.Previous) > MaxPreviousKeys {
		return fmt.Errorf("%w: %d previous keys; at most %d", ErrKeyFile, len(kf.Previous), MaxPreviousKeys)
	}
	seen := []seal.Key{kf.Current}
	for i, k := range kf.Previous {
		if k.IsZero() {
			return fmt.Errorf("%w: previous key %d is the zero key", ErrKeyFile, i)
		}
		if containsKey(seen, k) {
			return fmt.Errorf("%w: key %v listed twice", ErrKeyFile, k.ID())
		}
		seen = append(seen, k)
	}
	return nil
}

// MaxPreviousKeys bounds the previous keys a key file holds.
const MaxPreviousKeys = 8

const (
	keyFileMagic   = "HFKEYS"
	keyFileVersion = 0x01
)

// MarshalKeyFile encodes kf (see FORMAT.md). kf must be valid (see
// KeyFile.Validate); MarshalKeyFile panics otherwise, since only a
// programming error makes an invalid KeyFile.
func MarshalKeyFile(kf KeyFile) []byte {
	if err := kf.Validate(); err != nil {
		panic("raftlog: MarshalKeyFile: " + err.Error())
	}
	out := make([]byte, 0, len(keyFileMagic)+2+seal.KeySize*(1+len(kf.Previous)))
	out = append(out, keyFileMagic...)
	out = append(out, keyFileVersion)
	out = append(out, kf.Current.Bytes()...)
	out = append(out, byte(len(kf.Previous)))
	for _, k := range kf.Previous {
		out = append(out, k.Bytes()...)
	}
	return out
}

// ParseKeyFile decodes a key file made by MarshalKeyFile. It rejects
// anything else, so that MarshalKeyFile(ParseKeyFile(b)) == b.
func ParseKeyFile(b []byte) (KeyFile, error) {
	rest, ok := bytes.CutPrefix(b, []byte(keyFileMagic))
	if !ok {
		return KeyFile{}, fmt.Errorf("%w: not a key file", ErrKeyFile)
	}
	if len(rest) < 1 || rest[0] != keyFileVersion {
		return KeyFile{}, fmt.Errorf("%w: unknown version", ErrKeyFile)
	}
	rest = rest[1:]
	if len(rest) < seal.KeySize+1 {
		return KeyFile{}, fmt.Errorf("%w: truncated", ErrKeyFile)
	}
	var kf KeyFile
	kf.Current, _ = seal.ParseKey(rest[:seal.KeySize])
	n := int(rest[seal.KeySize])
	rest = rest[seal.KeySize+1:]
	if n > MaxPreviousKeys {
		return KeyFile{}, fmt.Errorf("%w: %d previous keys; at most %d", ErrKeyFile, n, MaxPreviousKeys)
	}
	if len(rest) != n*seal.KeySize {
		return KeyFile{}, fmt.Errorf("%w: %d bytes of previous keys; want %d", ErrKeyFile, len(rest), n*seal.KeySize)
	}
	for i := 0; i < n; i++ {
		k, _ := seal.ParseKey(rest[i*seal.KeySize : (i+1)*seal.KeySize])
		kf.Previous = append(kf.Previous, k)
	}
	if err := kf.Validate(); err != nil {
		return KeyFile{}, err
	}
	return kf, nil
}

// LoadKeyFile reads and parses the key file at path.
func LoadKeyFile(path string) (KeyFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return KeyFile{}, fmt.Errorf("load key file: %w", err)
	}
	kf, err := ParseKeyFile(b)
	if err != nil {
		return KeyFile{}, fmt.Errorf("load key file %s: %w", path, err)
	}
	return kf, nil
}

// SaveKeyFile writes kf to path atomically with mode 0600: a temporary
// file in the same directory is written and fsynced, renamed over path,
// and the directory is fsynced. A crash leaves either the old or the new
// file, never a mix.
func SaveKeyFile(path string, kf KeyFile) error {
	if err := kf.Validate(); err != nil {
		return fmt.Errorf("save key file: %w", err)
	}
	if err := writeFileAtomic(path, MarshalKeyFile(kf)); err != nil {
		return fmt.Errorf("save key file: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data (mode 0600) through atomicfile,
// then syncs the directory through syncDir (which tests can watch).
func writeFileAtomic(path string, data []byte) error {
	err := atomicfile.Write(path, 0o600, atomicfile.Options{NoDirSync: true}, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory, so the entries created, renamed or removed
// in it are durable.
func syncDir(dir string) error {
	if hook := testHookSyncDir.Load(); hook != nil {
		if err := (*hook)(dir); err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return dirsync.Sync(dir)
}

// testHookSyncDir, when set by a test, sees every directory syncDir syncs,
// and may make the sync fail.
var testHookSyncDir atomic.Pointer[func(dir string) error]

// mkdirDurable creates dir and its missing parents (mode 0700), and syncs
// the parent of each directory it creates so the new entries survive a
// power cut.
func mkdirDurable(dir string) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := syncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}
