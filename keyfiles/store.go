package keyfiles

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/failpoint"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/raftlog"
)

// The files a Store owns, relative to the data directory.
const (
	// DEKFile holds the node's DEKs (raftlog.KeyFile), wrapped under the
	// KEK when autolock is on.
	DEKFile = "keys"
	// RootFile, CertFile and NodeKeyFile are the node's TLS material: the
	// trusted roots, its certificate chain, and its private key (wrapped
	// under the KEK when autolock is on).
	RootFile    = "certs/root.pem"
	CertFile    = "certs/node.pem"
	NodeKeyFile = "certs/node.key"
	// JournalFile is a committed write of several files not yet applied;
	// see FORMAT.md.
	JournalFile = "keys.journal"
)

// Errors returned by a Store; check them with errors.Is. Every error that
// concerns a file names it.
var (
	// ErrLocked means a file is wrapped under the autolock KEK and the
	// store holds no KEK: the node is locked.
	ErrLocked = errors.New("wrapped under the autolock key, and this node is locked")
	// ErrDamaged means a key file's bytes are not what this store wrote:
	// truncated, flipped or otherwise changed. The file is never used.
	ErrDamaged = errors.New("damaged")
	// ErrMixed means the two wrapped files name different unlock keys, a
	// state only an interrupted rotation of an older release leaves.
	ErrMixed = errors.New("names another unlock key than the other key file (damaged, or left by an interrupted rotation of an older release)")
)

// Certs is the node's TLS material, as PEM.
type Certs struct {
	RootPEM, CertPEM, KeyPEM []byte
}

// Store is the one owner of a node's key files: the DEK file, the TLS key
// and the certificate files beside it. It holds the KEK (in memory only),
// wraps and unwraps, and writes every change atomically: one file by a
// synced rename, several files through a journal whose rename is the
// commit point (FORMAT.md). It is safe for concurrent use; its methods
// serialise on one mutex.
type Store struct {
	dir string

	mu sync.Mutex
	// kek is the autolock KEK; zero with autolock off (or locked).
	kek seal.Key
	// checkedFor is the ID of a KEK the files were found wrapped under,
	// so WrappedUnder does not read them again; valid while checked.
	checked    bool
	checkedFor seal.Key
	// recovered is set once a journal left by a crash was applied.
	recovered bool
	// pending is a whole journal a crash left under its temporary name
	// (pendingPath), kept for Unlock while the node is locked.
	pending     []entry
	pendingPath string
	// onPoint, set by this package's tests, is called at each failpoint.
	onPoint func(name string)
}

// hit passes a failpoint.
func (s *Store) hit(name string) {
	failpoint.Hit(name)
	if s.onPoint != nil {
		s.onPoint(name)
	}
}

// New returns the store for the data directory dir. It touches no file
// until a method is called; the first call finishes a write a crash
// interrupted (see Recover).
func New(dir string) *Store { return &Store{dir: dir} }

func (s *Store) path(name string) string { return filepath.Join(s.dir, filepath.FromSlash(name)) }

// Recover finishes a write that a crash interrupted: a committed journal
// is applied (roll forward) and removed, and temporary files of writes
// that did not commit are deleted (roll back). Every other method calls
// it first; call it directly to see its error at startup.
func (s *Store) Recover() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recoverLocked()
}

// SetKEK makes kek the KEK that future writes wrap under (zero: none, as
// with autolock off or on a worker). It writes nothing: Rekey re-wraps
// existing files. Use it when a node's files are written anew (init,
// restore, join) or are about to be (a demotion to worker).
func (s *Store) SetKEK(kek seal.Key) {
	s.mu.Lock()
	s.kek = kek
	s.checked = false
	s.mu.Unlock()
}

// Wrapped reports whether the DEK file or the TLS key is wrapped on disk:
// a manager with autolock on, which starts locked.
func (s *Store) Wrapped() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return false, err
	}
	return s.wrappedLocked(), nil
}

// WrappedKEKID reports the ID of the KEK that both the DEK file and the
// TLS key in the data dir dir say they are wrapped under, and false when
// either is missing, not wrapped, or under another KEK than the other.
// The ID is read from the envelopes' headers, not authenticated. It only
// reads: it finishes no interrupted write and needs no Store, so a tool
// or a test may ask it about the dir of a node running in another
// process, which owns the files (true: that node comes up locked after a
// restart).
func WrappedKEKID(dir string) (seal.KeyID, bool) {
	var ids []seal.KeyID
	for _, name := range []string{DEKFile, NodeKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return seal.KeyID{}, false
		}
		id, ok := autolock.KEKID(b)
		if !ok {
			return seal.KeyID{}, false
		}
		ids = append(ids, id)
	}
	if ids[0] != ids[1] {
		return seal.KeyID{}, false
	}
	return ids[0], true
}

// WrappedUnder reports whether the store's KEK is want (compared in
// constant time; zero for autolock off) and both files are stored under
// it: wrapped under want, or unwrapped when want is zero. A file not there
// yet counts as right. A node converges when this is false.
func (s *Store) WrappedUnder(want seal.Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kek.IsZero() != want.IsZero() || (!want.IsZero() && !s.kek.Equal(want)) {
		return false
	}
	if s.checked && s.checkedFor.Equal(want) {
		return true
	}
	if s.recoverLocked() != nil {
		return false
	}
	for _, name := range []string{DEKFile, NodeKeyFile} {
		b, err := os.ReadFile(s.path(name))
		if err != nil {
			continue
		}
		id, wrapped := autolock.KEKID(b)
		if want.IsZero() == wrapped || (wrapped && id != want.ID()) {
			return false
		}
	}
	s.checked, s.checkedFor = true, want
	return true
}

// Unlock checks that kek opens every wrapped file (the DEK file and the
// TLS key) and keeps it. A key that opens none is refused with an error
// wrapping autolock.ErrInvalidKey; a file the key should open but that
// does not authenticate, or does not parse once opened, with ErrDamaged;
// a file under another key than the other, with ErrMixed. The store's
// KEK is unchanged on error.
func (s *Store) Unlock(nodeID string, kek seal.Key) error {
	if kek.IsZero() {
		return errors.New("keyfiles: unlock with the zero key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return err
	}
	var opened, others []string
	for _, f := range []struct {
		name    string
		purpose autolock.Purpose
	}{{DEKFile, autolock.PurposeDEK}, {NodeKeyFile, autolock.PurposeNodeKey}} {
		b, err := os.ReadFile(s.path(f.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a manager that has not created its DEK yet
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", s.path(f.name), err)
		}
		if !autolock.IsWrapped(b) {
			continue
		}
		id, ok := autolock.KEKID(b)
		if !ok {
			return s.damaged(f.name, "not a whole envelope")
		}
		if id != kek.ID() {
			others = append(others, f.name)
			continue
		}
		pt, err := autolock.Unwrap(kek, f.purpose, nodeID, b)
		if err != nil {
			return s.damaged(f.name, "it names this unlock key but does not authenticate under it")
		}
		err = checkPlain(f.name, pt)
		clear(pt)
		if err != nil {
			return s.damaged(f.name, err.Error())
		}
		opened = append(opened, f.name)
	}
	switch {
	case len(others) > 0 && len(opened) == 0 && s.pending != nil && s.openPending(nodeID, kek):
		// The key of a KEK change that did not commit: commit it now.
		if err := s.commitPending(); err != nil {
			return err
		}
	case len(others) > 0 && len(opened) == 0:
		return fmt.Errorf("%w: %s is wrapped under another unlock key", autolock.ErrInvalidKey, s.path(others[0]))
	case len(others) > 0:
		return fmt.Errorf("%s: %w, %s: this node cannot be unlocked with one key; restore it from its peers (wipe and join again) or from a backup", s.path(others[0]), ErrMixed, s.path(opened[0]))
	default:
		s.dropPending()
	}
	s.kek, s.checked = kek, false
	return nil
}

// checkPlain checks an unwrapped file's plaintext.
func checkPlain(name string, pt []byte) error {
	switch name {
	case DEKFile:
		_, err := raftlog.ParseKeyFile(pt)
		return err
	case NodeKeyFile:
		return checkKeyPEM(pt)
	}
	return nil
}

func (s *Store) damaged(name, why string) error {
	return fmt.Errorf("%s: %w: %s", s.path(name), ErrDamaged, why)
}

// LoadDEKs reads the DEK file. A missing file is an error wrapping
// fs.ErrNotExist; a wrapped file with no KEK held, ErrLocked.
func (s *Store) LoadDEKs(nodeID string) (raftlog.KeyFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return raftlog.KeyFile{}, err
	}
	return s.loadDEKsLocked(nodeID)
}

// LoadDEKsWith reads the DEK file, opening it under kek (a wrapped file)
// without keeping kek and without looking at the TLS key: for offline
// tools that read a stopped node's log. A kek that does not open it is
// refused with autolock.ErrInvalidKey.
func (s *Store) LoadDEKsWith(nodeID string, kek seal.Key) (raftlog.KeyFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return raftlog.KeyFile{}, err
	}
	held := s.kek
	s.kek = kek
	defer func() { s.kek = held }()
	return s.loadDEKsLocked(nodeID)
}

func (s *Store) loadDEKsLocked(nodeID string) (raftlog.KeyFile, error) {
	p := s.path(DEKFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return raftlog.KeyFile{}, fmt.Errorf("read the DEK file: %w", err)
	}
	pt, err := s.open(DEKFile, autolock.PurposeDEK, nodeID, b)
	if err != nil {
		return raftlog.KeyFile{}, err
	}
	legacy := s.kek.IsZero() && bytes.HasPrefix(b, []byte(legacyMagic))
	body, err := parsePlainDEK(pt)
	if err != nil {
		return raftlog.KeyFile{}, s.damaged(DEKFile, err.Error())
	}
	kf, err := raftlog.ParseKeyFile(body)
	clear(pt)
	if err != nil {
		return raftlog.KeyFile{}, s.damaged(DEKFile, err.Error())
	}
	if legacy {
		// The previous release's unwrapped file has no checksum: write it
		// again in the checksummed frame, once.
		if err := s.write(kindDEK, []entry{{DEKFile, s.encodeDEKs(nodeID, kf)}}); err != nil {
			return raftlog.KeyFile{}, fmt.Errorf("upgrade the DEK file: %w", err)
		}
	}
	return kf, nil
}

// open unwraps b under the store's KEK when it is wrapped.
func (s *Store) open(name string, purpose autolock.Purpose, nodeID string, b []byte) ([]byte, error) {
	if !autolock.IsWrapped(b) {
		return b, nil
	}
	if s.kek.IsZero() {
		return nil, fmt.Errorf("%s: %w", s.path(name), ErrLocked)
	}
	id, ok := autolock.KEKID(b)
	if !ok {
		return nil, s.damaged(name, "not a whole envelope")
	}
	if id != s.kek.ID() {
		return nil, fmt.Errorf("%s: %w: wrapped under KEK %s, not this node's KEK %s", s.path(name), autolock.ErrInvalidKey, id, s.kek.ID())
	}
	pt, err := autolock.Unwrap(s.kek, purpose, nodeID, b)
	if err != nil {
		return nil, s.damaged(name, "does not authenticate under this node's unlock key")
	}
	return pt, nil
}

// seal wraps plaintext under the store's KEK, or returns it as is.
func (s *Store) seal(purpose autolock.Purpose, nodeID string, pt []byte) []byte {
	if s.kek.IsZero() {
		return pt
	}
	return autolock.Wrap(s.kek, purpose, nodeID, pt)
}

// encodeDEKs is the DEK file's bytes for kf under the store's KEK.
func (s *Store) encodeDEKs(nodeID string, kf raftlog.KeyFile) []byte {
	body := raftlog.MarshalKeyFile(kf)
	if s.kek.IsZero() {
		return framePlainDEK(body)
	}
	out := autolock.Wrap(s.kek, autolock.PurposeDEK, nodeID, body)
	clear(body)
	return out
}

// SaveDEKs writes the DEK file (wrapped under the KEK when the store holds
// one) with one synced rename.
func (s *Store) SaveDEKs(nodeID string, kf raftlog.KeyFile) error {
	if err := kf.Validate(); err != nil {
		return fmt.Errorf("save the DEK file: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return err
	}
	return s.write(kindDEK, []entry{{DEKFile, s.encodeDEKs(nodeID, kf)}})
}

// RemoveDEKs deletes the DEK file (a demoted manager's raft state).
func (s *Store) RemoveDEKs() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return err
	}
	if err := os.Remove(s.path(DEKFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(s.dir)
}

// Wipe deletes every file the store owns, and forgets the KEK.
func (s *Store) Wipe() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kek, s.checked, s.recovered = seal.Key{}, false, false
	s.dropPending()
	removeTemps(s.dir, "")
	for _, p := range []string{s.path(JournalFile), s.path("certs"), s.path(DEKFile)} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// LoadCerts reads the node's certificate material, the key unwrapped. A
// damaged file (a PEM that does not parse, a key that does not match the
// certificate) is refused with ErrDamaged and the file's name.
func (s *Store) LoadCerts(nodeID string) (*Certs, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return nil, err
	}
	return s.loadCertsLocked(nodeID)
}

func (s *Store) loadCertsLocked(nodeID string) (*Certs, error) {
	var c Certs
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{RootFile, &c.RootPEM}, {CertFile, &c.CertPEM}, {NodeKeyFile, &c.KeyPEM}} {
		b, err := os.ReadFile(s.path(f.name))
		if err != nil {
			return nil, fmt.Errorf("read certificate material: %w", err)
		}
		*f.dst = b
	}
	key, err := s.open(NodeKeyFile, autolock.PurposeNodeKey, nodeID, c.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("node TLS key: %w", err)
	}
	c.KeyPEM = key
	if err := checkCerts(&c); err != nil {
		var fe *fileError
		if errors.Is(err, errMismatch) {
			return nil, fmt.Errorf("%s, %s: %w: %v", s.path(NodeKeyFile), s.path(CertFile), ErrDamaged, err)
		}
		if errors.As(err, &fe) {
			return nil, s.damaged(fe.name, fe.err.Error())
		}
		return nil, err
	}
	return &c, nil
}

// SaveCerts writes the node's certificate material as one step: the
// three files change together or not at all. The key is wrapped under
// the KEK when the store holds one.
func (s *Store) SaveCerts(nodeID string, c *Certs) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return err
	}
	return s.write(kindCerts, []entry{
		{RootFile, c.RootPEM},
		{CertFile, c.CertPEM},
		{NodeKeyFile, s.seal(autolock.PurposeNodeKey, nodeID, c.KeyPEM)},
	})
}

// Rekey re-wraps the DEK file and the TLS key under kek (zero: store them
// unwrapped) in one atomic step, and keeps kek. The DEK file's contents
// are dek when given (the keyring in use), else the file's own. The files
// are read under the store's current KEK. A crash before the journal's
// rename leaves both under the old KEK, after it both under the new one
// (FORMAT.md); never one of each.
func (s *Store) Rekey(nodeID string, kek seal.Key, dek *raftlog.KeyFile) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.recoverLocked(); err != nil {
		return err
	}
	var kf raftlog.KeyFile
	haveDEK := dek != nil
	if haveDEK {
		kf = *dek
	} else if fileExists(s.path(DEKFile)) {
		var err error
		if kf, err = s.loadDEKsLocked(nodeID); err != nil {
			return err
		}
		haveDEK = true
	}
	var keyPEM []byte
	if b, err := os.ReadFile(s.path(NodeKeyFile)); err == nil {
		if keyPEM, err = s.open(NodeKeyFile, autolock.PurposeNodeKey, nodeID, b); err != nil {
			return fmt.Errorf("node TLS key: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	old := s.kek
	s.kek = kek
	var es []entry
	if haveDEK {
		es = append(es, entry{DEKFile, s.encodeDEKs(nodeID, kf)})
	}
	if keyPEM != nil {
		es = append(es, entry{NodeKeyFile, s.seal(autolock.PurposeNodeKey, nodeID, keyPEM)})
	}
	if err := s.write(kindRekey, es); err != nil {
		if !fileExists(s.path(JournalFile)) {
			s.kek = old // not committed: the files stay under the old KEK
		}
		return err
	}
	s.checked = false
	return nil
}

// kind names a write, for its failpoints.
type kind int

const (
	kindRekey kind = iota + 1
	kindDEK
	kindCerts
)

// points are the failpoints of each kind of write, by step.
var points = map[kind]struct{ prepared, committed, half, applied string }{
	kindRekey: {failpoint.KeyfilesRekeyPrepared, failpoint.KeyfilesRekeyCommitted, failpoint.KeyfilesRekeyHalfApplied, failpoint.KeyfilesRekeyApplied},
	kindDEK:   {failpoint.KeyfilesDEKPrepared, "", "", failpoint.KeyfilesDEKApplied},
	kindCerts: {failpoint.KeyfilesCertsPrepared, failpoint.KeyfilesCertsCommitted, failpoint.KeyfilesCertsHalfApplied, failpoint.KeyfilesCertsApplied},
}

// entry is one file of a write: its name (one of the owned files) and
// bytes.
type entry struct {
	name string
	data []byte
}

// write makes es durable as one step. One file is written by a synced
// rename. Several go through the journal: it is written under a
// temporary name and synced, renamed into place (the commit point), then
// each file is written by a synced rename, then the journal is removed.
func (s *Store) write(k kind, es []entry) error {
	s.dropPending()
	fp := points[k]
	if len(es) == 0 {
		return nil
	}
	if err := os.MkdirAll(s.path("certs"), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", s.path("certs"), err)
	}
	if len(es) == 1 {
		if err := writeFileAtomic(s.path(es[0].name), es[0].data, modeOf(es[0].name), func() { s.hit(fp.prepared) }); err != nil {
			return err
		}
		s.hit(fp.applied)
		s.checked = false
		return nil
	}
	if err := writeFileAtomic(s.path(JournalFile), marshalJournal(es), 0o600, func() { s.hit(fp.prepared) }); err != nil {
		return err
	}
	s.hit(fp.committed)
	s.checked = false
	for i, e := range es {
		if err := writeFileAtomic(s.path(e.name), e.data, modeOf(e.name), nil); err != nil {
			// The journal stays: a restart (or the next call) applies it.
			s.recovered = false
			return err
		}
		if i == 0 {
			s.hit(fp.half)
		}
	}
	s.hit(fp.applied)
	return s.removeJournal()
}

func (s *Store) removeJournal() error {
	if err := os.Remove(s.path(JournalFile)); err != nil {
		return fmt.Errorf("remove %s: %w", s.path(JournalFile), err)
	}
	return syncDir(s.dir)
}

// recoverLocked is Recover with s.mu held; it does its work once.
//
// A journal that was written and synced but not renamed (a crash at the
// prepared point) did not commit, and the files are whole under their
// old KEK. When they are wrapped, the journal is kept as pending instead
// of deleted: Unlock tries the key on the files, and on the pending
// journal, and commits the journal if the key opens it. So after a crash
// at any point of a KEK change the new key unlocks the node (and, before
// the commit, the old one too).
func (s *Store) recoverLocked() error {
	if s.recovered {
		return nil
	}
	pending, pendingPath := s.findPending()
	for _, d := range []string{s.dir, s.path("certs")} {
		removeTemps(d, pendingPath)
	}
	b, err := os.ReadFile(s.path(JournalFile))
	if errors.Is(err, fs.ErrNotExist) {
		if pending != nil && s.wrappedLocked() {
			s.pending, s.pendingPath = pending, pendingPath
		} else if pendingPath != "" {
			_ = os.Remove(pendingPath)
		}
		s.recovered = true
		return nil
	}
	if pendingPath != "" {
		_ = os.Remove(pendingPath) // older than the committed journal
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", s.path(JournalFile), err)
	}
	es, err := parseJournal(b)
	if err != nil {
		return fmt.Errorf("%s: %w: %v; the write it records may be half done: see OPERATIONS.md, 'After a crash during unlock-key rotation'", s.path(JournalFile), ErrDamaged, err)
	}
	if err := s.apply(es); err != nil {
		return err
	}
	s.recovered, s.checked = true, false
	return nil
}

// apply writes a committed journal's files and removes it.
func (s *Store) apply(es []entry) error {
	if err := os.MkdirAll(s.path("certs"), 0o700); err != nil {
		return err
	}
	for _, e := range es {
		if err := writeFileAtomic(s.path(e.name), e.data, modeOf(e.name), nil); err != nil {
			return fmt.Errorf("finish an interrupted key file write: %w", err)
		}
	}
	return s.removeJournal()
}

// findPending returns the newest whole journal left under a temporary
// name, if any.
func (s *Store) findPending() ([]entry, string) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, ""
	}
	var best []entry
	var bestPath string
	var bestTime int64
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "."+JournalFile+tmpInfix) {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		fi, err1 := e.Info()
		b, err2 := os.ReadFile(p)
		if err1 != nil || err2 != nil {
			continue
		}
		es, err := parseJournal(b)
		if err != nil {
			continue // torn: it never committed, and is deleted
		}
		if t := fi.ModTime().UnixNano(); best == nil || t > bestTime {
			best, bestPath, bestTime = es, p, t
		}
	}
	return best, bestPath
}

// wrappedLocked reports whether the DEK file or the TLS key is wrapped.
func (s *Store) wrappedLocked() bool {
	for _, name := range []string{DEKFile, NodeKeyFile} {
		b, err := os.ReadFile(s.path(name))
		if err == nil && autolock.IsWrapped(b) {
			return true
		}
	}
	return false
}

// dropPending deletes a pending journal: the key opened the files as they
// are, so the write it holds never happens (the node converges again).
func (s *Store) dropPending() {
	if s.pendingPath != "" {
		_ = os.Remove(s.pendingPath)
	}
	s.pending, s.pendingPath = nil, ""
}

// openPending reports whether kek opens every wrapped key file in the
// pending journal (at least one).
func (s *Store) openPending(nodeID string, kek seal.Key) bool {
	n := 0
	for _, e := range s.pending {
		var purpose autolock.Purpose
		switch e.name {
		case DEKFile:
			purpose = autolock.PurposeDEK
		case NodeKeyFile:
			purpose = autolock.PurposeNodeKey
		default:
			continue
		}
		if !autolock.IsWrapped(e.data) {
			return false
		}
		pt, err := autolock.Unwrap(kek, purpose, nodeID, e.data)
		if err != nil {
			return false
		}
		err = checkPlain(e.name, pt)
		clear(pt)
		if err != nil {
			return false
		}
		n++
	}
	return n > 0
}

// commitPending renames the pending journal into place and applies it.
func (s *Store) commitPending() error {
	if err := os.Rename(s.pendingPath, s.path(JournalFile)); err != nil {
		return fmt.Errorf("commit the pending key file write: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	es := s.pending
	s.pending, s.pendingPath = nil, ""
	return s.apply(es)
}

// removeTemps deletes the temporary files of writes a crash interrupted
// before their rename: they never became part of the node's state.
func removeTemps(dir, keep string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		for _, owned := range []string{DEKFile, JournalFile, RootFile, CertFile, NodeKeyFile} {
			if p := filepath.Join(dir, n); strings.HasPrefix(n, "."+filepath.Base(owned)+tmpInfix) && p != keep {
				_ = os.Remove(p)
			}
		}
	}
}

func modeOf(name string) fs.FileMode {
	switch name {
	case RootFile, CertFile:
		return 0o644
	}
	return 0o600
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
