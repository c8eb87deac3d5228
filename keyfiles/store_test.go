package keyfiles

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/internal/atomicfile"
	"github.com/holdfast/holdfast/internal/failpoint"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/raftlog"
)

var nodeID = ca.NewID()

// newCerts returns a root, a node certificate and its key, as PEM.
func newCerts(t *testing.T) *Certs {
	t.Helper()
	now := time.Now()
	root, err := ca.NewRoot(ca.NewID(), now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := root.Issue(csr, ca.Identity{NodeID: nodeID, Role: ca.RoleManager, ClusterID: root.ClusterID()}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := ca.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Certs{RootPEM: root.CertPEM(), CertPEM: cert, KeyPEM: keyPEM}
}

// node is a data dir with a DEK file and certificates, under kek (zero:
// unwrapped).
type node struct {
	dir   string
	kf    raftlog.KeyFile
	certs *Certs
	// anyCerts accepts certificate files that differ from certs (a
	// damaged certificate: TLS verification refuses it, not this store).
	anyCerts bool
}

func newNode(t *testing.T, kek seal.Key) *node {
	t.Helper()
	n := &node{dir: t.TempDir(), kf: raftlog.KeyFile{Current: seal.NewKey(), Previous: []seal.Key{seal.NewKey()}}, certs: newCerts(t)}
	s := New(n.dir)
	s.SetKEK(kek)
	if err := s.SaveCerts(nodeID, n.certs); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDEKs(nodeID, n.kf); err != nil {
		t.Fatal(err)
	}
	return n
}

// check opens n's files with a fresh store and kek (zero: none), and
// reports whether they hold what n wrote.
func (n *node) check(t *testing.T, kek seal.Key) error {
	t.Helper()
	s := New(n.dir)
	if !kek.IsZero() {
		if err := s.Unlock(nodeID, kek); err != nil {
			return err
		}
	}
	kf, err := s.LoadDEKs(nodeID)
	if err != nil {
		return err
	}
	if !kf.Current.Equal(n.kf.Current) || len(kf.Previous) != len(n.kf.Previous) || !kf.Previous[0].Equal(n.kf.Previous[0]) {
		t.Fatalf("LoadDEKs returned other keys than were saved")
	}
	c, err := s.LoadCerts(nodeID)
	if err != nil {
		return err
	}
	got, err := ca.ParseKey(c.KeyPEM)
	if err != nil {
		t.Fatalf("LoadCerts returned a key that does not parse: %v", err)
	}
	want, _ := ca.ParseKey(n.certs.KeyPEM)
	if !got.Equal(want) {
		t.Fatalf("LoadCerts returned another key than was saved")
	}
	if !n.anyCerts && (!bytes.Equal(c.CertPEM, n.certs.CertPEM) || !bytes.Equal(c.RootPEM, n.certs.RootPEM)) {
		t.Fatalf("LoadCerts returned other certificates than were saved")
	}
	return nil
}

func TestRoundTripAndModes(t *testing.T) {
	for _, tt := range []struct {
		name string
		kek  seal.Key
	}{{"unwrapped", seal.Key{}}, {"wrapped", seal.NewKey()}} {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.kek)
			if err := n.check(t, tt.kek); err != nil {
				t.Fatal(err)
			}
			wrapped, err := New(n.dir).Wrapped()
			if err != nil || wrapped != !tt.kek.IsZero() {
				t.Errorf("Wrapped() = %v, %v; want %v", wrapped, err, !tt.kek.IsZero())
			}
			for name, want := range map[string]fs.FileMode{DEKFile: 0o600, NodeKeyFile: 0o600, CertFile: 0o644, RootFile: 0o644} {
				fi, err := os.Stat(filepath.Join(n.dir, name))
				if err != nil || fi.Mode().Perm() != want {
					t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(n.dir, JournalFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("journal left behind: %v", err)
			}
		})
	}
}

// The previous release's files (raftlog.SaveKeyFile's unwrapped DEK file,
// an envelope of the same bytes, a PEM key) are read in place.
func TestReadsPreviousReleaseFiles(t *testing.T) {
	for _, tt := range []struct {
		name string
		kek  seal.Key
	}{{"unwrapped", seal.Key{}}, {"wrapped", seal.NewKey()}} {
		t.Run(tt.name, func(t *testing.T) {
			n := &node{dir: t.TempDir(), kf: raftlog.KeyFile{Current: seal.NewKey(), Previous: []seal.Key{seal.NewKey()}}, certs: newCerts(t)}
			dek, key := raftlog.MarshalKeyFile(n.kf), n.certs.KeyPEM
			if !tt.kek.IsZero() {
				dek = autolock.Wrap(tt.kek, autolock.PurposeDEK, nodeID, dek)
				key = autolock.Wrap(tt.kek, autolock.PurposeNodeKey, nodeID, key)
			}
			if err := os.MkdirAll(filepath.Join(n.dir, "certs"), 0o700); err != nil {
				t.Fatal(err)
			}
			for name, b := range map[string][]byte{DEKFile: dek, NodeKeyFile: key, CertFile: n.certs.CertPEM, RootFile: n.certs.RootPEM} {
				if err := os.WriteFile(filepath.Join(n.dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := n.check(t, tt.kek); err != nil {
				t.Fatal(err)
			}
			// The unwrapped file is upgraded to the checksummed frame.
			b, err := os.ReadFile(filepath.Join(n.dir, DEKFile))
			if err != nil {
				t.Fatal(err)
			}
			if wantPrefix := map[bool]string{true: plainMagic, false: "HFWRAP"}[tt.kek.IsZero()]; !bytes.HasPrefix(b, []byte(wantPrefix)) {
				t.Errorf("DEK file after a load starts %q; want %q", b[:7], wantPrefix)
			}
			if err := n.check(t, tt.kek); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUnlockWrongKey(t *testing.T) {
	n := newNode(t, seal.NewKey())
	err := New(n.dir).Unlock(nodeID, seal.NewKey())
	if !errors.Is(err, autolock.ErrInvalidKey) {
		t.Fatalf("Unlock with another key: %v; want ErrInvalidKey", err)
	}
	s := New(n.dir)
	if _, err := s.LoadDEKs(nodeID); !errors.Is(err, ErrLocked) {
		t.Errorf("LoadDEKs while locked: %v; want ErrLocked", err)
	}
}

// errCrash is the panic a test's failpoint raises: the write stops there,
// as if the process had died (the store is then dropped).
var errCrash = errors.New("crash")

// crashAt runs f on a store that "dies" at the point name, and reports
// whether it got there.
func crashAt(dir string, kek seal.Key, name string, f func(*Store) error) (reached bool, err error) {
	s := New(dir)
	s.SetKEK(kek)
	s.onPoint = func(p string) {
		if p == name {
			panic(errCrash)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			if r != errCrash {
				panic(r)
			}
			reached = true
		}
	}()
	return false, f(s)
}

// A crash at any point of an unlock-key rotation leaves a node that the
// new key opens, whole, and before the journal's rename (prepared) the
// old key too: Unlock tries the key on the files and on the journal that
// did not commit, and commits it if the key opens it. Autolock turned on
// (no key to the old state) and off (no key to the new) too.
func TestRekeyCrashAtEveryPoint(t *testing.T) {
	steps := []struct {
		point     string
		committed bool
	}{
		{failpoint.KeyfilesRekeyPrepared, false},
		{failpoint.KeyfilesRekeyCommitted, true},
		{failpoint.KeyfilesRekeyHalfApplied, true},
		{failpoint.KeyfilesRekeyApplied, true},
	}
	for _, change := range []struct {
		name     string
		from, to seal.Key
	}{{"rotate", seal.NewKey(), seal.NewKey()}, {"on", seal.Key{}, seal.NewKey()}, {"off", seal.NewKey(), seal.Key{}}} {
		for _, st := range steps {
			t.Run(change.name+"/"+st.point, func(t *testing.T) {
				n := newNode(t, change.from)
				reached, err := crashAt(n.dir, change.from, st.point, func(s *Store) error { return s.Rekey(nodeID, change.to, nil) })
				if !reached {
					t.Fatalf("the rotation did not reach %s (err %v)", st.point, err)
				}
				// The keys that must open the node; the zero key stands for
				// files stored unwrapped (no key needed).
				opens := []seal.Key{change.to}
				if !st.committed {
					opens = []seal.Key{change.from}
					if !change.from.IsZero() && !change.to.IsZero() {
						opens = append(opens, change.to)
					}
				}
				for _, k := range []seal.Key{change.from, change.to} {
					m := &node{dir: t.TempDir(), kf: n.kf, certs: n.certs}
					copyDir(t, n.dir, m.dir)
					want := false
					for _, o := range opens {
						want = want || o.Equal(k) || (o.IsZero() && k.IsZero())
					}
					locked := false
					for _, o := range opens {
						locked = locked || !o.IsZero()
					}
					if !want {
						if !k.IsZero() && locked { // an unlocked node takes no key
							if err := New(m.dir).Unlock(nodeID, k); !errors.Is(err, autolock.ErrInvalidKey) {
								t.Errorf("a key that must not open the node: %v; want ErrInvalidKey", err)
							}
						}
						continue
					}
					if err := m.check(t, k); err != nil {
						t.Fatalf("after a crash at %s: %v; want this key to open every file", st.point, err)
					}
					// It converges: the rotation done again ends under the new key.
					s := New(m.dir)
					if !k.IsZero() {
						if err := s.Unlock(nodeID, k); err != nil {
							t.Fatal(err)
						}
					}
					if err := s.Rekey(nodeID, change.to, nil); err != nil {
						t.Fatal(err)
					}
					if err := m.check(t, change.to); err != nil {
						t.Fatalf("after converging: %v", err)
					}
					if w, _ := New(m.dir).Wrapped(); w == change.to.IsZero() {
						t.Errorf("after converging: wrapped = %v; want %v", w, !change.to.IsZero())
					}
					ents, _ := os.ReadDir(m.dir)
					for _, e := range ents {
						if strings.HasPrefix(e.Name(), ".") || e.Name() == JournalFile {
							t.Errorf("%s left after converging", e.Name())
						}
					}
				}
			})
		}
	}
}

// A crash at any point of a certificate write leaves the old material or
// the new, never a key of one with the certificate of the other.
func TestSaveCertsCrashAtEveryPoint(t *testing.T) {
	for _, st := range []struct {
		point string
		isNew bool
	}{
		{failpoint.KeyfilesCertsPrepared, false},
		{failpoint.KeyfilesCertsCommitted, true},
		{failpoint.KeyfilesCertsHalfApplied, true},
		{failpoint.KeyfilesCertsApplied, true},
	} {
		t.Run(st.point, func(t *testing.T) {
			kek := seal.NewKey()
			n := newNode(t, kek)
			next := newCerts(t)
			reached, err := crashAt(n.dir, kek, st.point, func(s *Store) error { return s.SaveCerts(nodeID, next) })
			if !reached {
				t.Fatalf("did not reach %s (err %v)", st.point, err)
			}
			if st.isNew {
				n.certs = next
			}
			if err := n.check(t, kek); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSaveDEKsCrash(t *testing.T) {
	for _, st := range []struct {
		point string
		isNew bool
	}{{failpoint.KeyfilesDEKPrepared, false}, {failpoint.KeyfilesDEKApplied, true}} {
		t.Run(st.point, func(t *testing.T) {
			kek := seal.NewKey()
			n := newNode(t, kek)
			next := raftlog.KeyFile{Current: seal.NewKey(), Previous: []seal.Key{n.kf.Current}}
			if reached, err := crashAt(n.dir, kek, st.point, func(s *Store) error { return s.SaveDEKs(nodeID, next) }); !reached {
				t.Fatalf("did not reach %s (err %v)", st.point, err)
			}
			if st.isNew {
				n.kf = next
			}
			if err := n.check(t, kek); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(n.dir)
			for _, e := range ents {
				if strings.Contains(e.Name(), tmpInfix) {
					t.Errorf("temporary file %s left after recovery", e.Name())
				}
			}
		})
	}
}

// A flipped bit anywhere in a key file (the DEK file, the TLS key, the
// journal), or a file cut short, is refused with an error naming the
// file: never a wrong key, never a panic. (The same key may come back
// when the change is one PEM decoding ignores.) A damaged certificate
// file never yields another key either.
func TestDamagedFilesAreRefusedByName(t *testing.T) {
	for _, tt := range []struct {
		name string
		kek  seal.Key
	}{{"unwrapped", seal.Key{}}, {"wrapped", seal.NewKey()}} {
		n := newNode(t, tt.kek)
		// A journal as a crash would leave it, to damage too.
		jdir := t.TempDir()
		copyDir(t, n.dir, jdir)
		if reached, _ := crashAt(jdir, tt.kek, failpoint.KeyfilesRekeyCommitted, func(s *Store) error { return s.Rekey(nodeID, tt.kek, nil) }); !reached {
			t.Fatal("no journal")
		}
		for _, f := range []struct {
			dir, name string
		}{{n.dir, DEKFile}, {n.dir, NodeKeyFile}, {n.dir, CertFile}, {n.dir, RootFile}, {jdir, JournalFile}} {
			t.Run(tt.name+"/"+f.name, func(t *testing.T) {
				orig, err := os.ReadFile(filepath.Join(f.dir, f.name))
				if err != nil {
					t.Fatal(err)
				}
				try := func(what string, b []byte) {
					d := t.TempDir()
					copyDir(t, f.dir, d)
					if err := os.WriteFile(filepath.Join(d, f.name), b, 0o600); err != nil {
						t.Fatal(err)
					}
					m := &node{dir: d, kf: n.kf, certs: n.certs, anyCerts: f.name == CertFile || f.name == RootFile}
					err := m.check(t, tt.kek) // fails the test on a wrong key
					if err != nil && !strings.Contains(err.Error(), filepath.Join(d, filepath.FromSlash(f.name))) {
						t.Fatalf("%s: error does not name the file: %v", what, err)
					}
				}
				step := max(1, len(orig)/41)
				for i := 0; i < len(orig); i += step {
					b := bytes.Clone(orig)
					b[i] ^= 1 << (i % 8)
					try("flip", b)
				}
				for _, l := range []int{0, 1, 6, 7, 15, len(orig) / 2, len(orig) - 17, len(orig) - 1} {
					if l >= 0 && l < len(orig) {
						try("truncate", orig[:l])
					}
				}
			})
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A journal torn before its rename (cut short, or a flipped byte) is no
// pending write: it is deleted, and only the old key opens the node.
func TestTornPendingJournalIsDropped(t *testing.T) {
	from, to := seal.NewKey(), seal.NewKey()
	n := newNode(t, from)
	if reached, _ := crashAt(n.dir, from, failpoint.KeyfilesRekeyPrepared, func(s *Store) error { return s.Rekey(nodeID, to, nil) }); !reached {
		t.Fatal("no pending journal")
	}
	ents, _ := os.ReadDir(n.dir)
	var tmp string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+JournalFile+tmpInfix) {
			tmp = filepath.Join(n.dir, e.Name())
		}
	}
	b, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for name, torn := range map[string][]byte{"cut": b[:len(b)/2], "flipped": append(bytes.Clone(b[:40]), append([]byte{b[40] ^ 4}, b[41:]...)...)} {
		t.Run(name, func(t *testing.T) {
			m := &node{dir: t.TempDir(), kf: n.kf, certs: n.certs}
			copyDir(t, n.dir, m.dir)
			if err := os.WriteFile(filepath.Join(m.dir, filepath.Base(tmp)), torn, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := New(m.dir).Unlock(nodeID, to); !errors.Is(err, autolock.ErrInvalidKey) {
				t.Errorf("the new key with a torn pending journal: %v; want ErrInvalidKey", err)
			}
			if err := m.check(t, from); err != nil {
				t.Errorf("the old key: %v", err)
			}
			if _, err := os.Stat(filepath.Join(m.dir, filepath.Base(tmp))); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("torn journal not deleted: %v", err)
			}
		})
	}
}

// LoadDEKsWith opens the DEK file under a key it does not keep, and
// refuses another key.
func TestLoadDEKsWith(t *testing.T) {
	kek := seal.NewKey()
	n := newNode(t, kek)
	s := New(n.dir)
	if _, err := s.LoadDEKsWith(nodeID, seal.NewKey()); !errors.Is(err, autolock.ErrInvalidKey) {
		t.Errorf("another key: %v; want ErrInvalidKey", err)
	}
	kf, err := s.LoadDEKsWith(nodeID, kek)
	if err != nil || !kf.Current.Equal(n.kf.Current) {
		t.Fatalf("LoadDEKsWith: %v", err)
	}
	if _, err := s.LoadDEKs(nodeID); !errors.Is(err, ErrLocked) {
		t.Errorf("the store kept the key: LoadDEKs = %v; want ErrLocked", err)
	}
}

// TestWrappedKEKID: the KEK's ID only when both the DEK file and the TLS
// key are wrapped under it; it writes nothing, not even to finish a
// pending journal.
func TestWrappedKEKID(t *testing.T) {
	plain := newNode(t, seal.Key{})
	if id, ok := WrappedKEKID(plain.dir); ok {
		t.Errorf("WrappedKEKID of unwrapped files = %v, true", id)
	}
	kek := seal.NewKey()
	wrapped := newNode(t, kek)
	if id, ok := WrappedKEKID(wrapped.dir); !ok || id != kek.ID() {
		t.Errorf("WrappedKEKID of wrapped files = %v, %v; want %v, true", id, ok, kek.ID())
	}
	// The TLS key under another KEK, then unwrapped.
	other := newNode(t, seal.NewKey())
	for _, from := range []*node{other, plain} {
		b, err := os.ReadFile(filepath.Join(from.dir, "certs", "node.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(wrapped.dir, "certs", "node.key"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if id, ok := WrappedKEKID(wrapped.dir); ok {
			t.Errorf("WrappedKEKID with the TLS key of another node's files = %v, true", id)
		}
	}
	if _, ok := WrappedKEKID(t.TempDir()); ok {
		t.Error("WrappedKEKID of an empty dir = true")
	}
	// A committed journal is left for the node to apply.
	journal := filepath.Join(wrapped.dir, JournalFile)
	if err := os.WriteFile(journal, []byte("not applied by WrappedKEKID"), 0o600); err != nil {
		t.Fatal(err)
	}
	WrappedKEKID(wrapped.dir)
	if got, err := os.ReadFile(journal); err != nil || string(got) != "not applied by WrappedKEKID" {
		t.Errorf("WrappedKEKID touched the journal: %q, %v", got, err)
	}
}

// Crash recovery finds temporary files by the names atomicfile gives them.
func TestTempNamesAreAtomicfiles(t *testing.T) {
	for _, name := range []string{DEKFile, JournalFile, RootFile, CertFile, NodeKeyFile} {
		if got, want := atomicfile.TempPrefix(name), "."+filepath.Base(name)+tmpInfix; got != want {
			t.Errorf("atomicfile.TempPrefix(%q) = %q; recovery looks for %q", name, got, want)
		}
	}
}
