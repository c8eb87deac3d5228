package powerfs

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

var (
	checkOnce sync.Once
	checkErr  error
)

// mount mounts a power-cut filesystem for the test, or skips the test
// where FUSE cannot be mounted.
func mount(t *testing.T) (*FS, string) {
	t.Helper()
	checkOnce.Do(func() { checkErr = Check() })
	if checkErr != nil {
		t.Logf("FUSE cannot be mounted here: %v", checkErr)
		t.Skip("powerfs needs FUSE: " + checkErr.Error())
	}
	mnt := t.TempDir()
	f, err := Mount(mnt, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return f, mnt
}

func cut(t *testing.T, f *FS) Loss {
	t.Helper()
	l, err := f.Cut()
	if err != nil {
		t.Fatalf("cut: %v", err)
	}
	return l
}

func syncPath(t *testing.T, p string) {
	t.Helper()
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", p, err)
	}
}

func fdatasyncPath(t *testing.T, p string) {
	t.Helper()
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := unix.Fdatasync(int(fh.Fd())); err != nil {
		t.Fatalf("fdatasync %s: %v", p, err)
	}
}

// writeDurable writes a file and syncs it and its directory.
func writeDurable(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	syncPath(t, p)
	syncPath(t, filepath.Dir(p))
}

func writeAt(t *testing.T, p string, data []byte, off int64, flag int) {
	t.Helper()
	fh, err := os.OpenFile(p, os.O_WRONLY|flag, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if flag&os.O_APPEND != 0 {
		_, err = fh.Write(data)
	} else {
		_, err = fh.WriteAt(data, off)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func wantContent(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes %.40q; want %d bytes %.40q", filepath.Base(p), len(got), got, len(want), want)
	}
}

func wantAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s after the cut: %v; want it gone", filepath.Base(p), err)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

func TestWrites(t *testing.T) {
	old := pattern(10000, 'a')
	tests := []struct {
		name   string
		change func(t *testing.T, p string) // after p holds old, durably
		want   func() []byte
	}{
		{"overwrite without fsync is lost", func(t *testing.T, p string) {
			writeAt(t, p, []byte("NEW"), 5000, 0)
		}, func() []byte { return old }},
		{"overwrite with fsync stays", func(t *testing.T, p string) {
			writeAt(t, p, []byte("NEW"), 5000, 0)
			syncPath(t, p)
		}, func() []byte { b := bytes.Clone(old); copy(b[5000:], "NEW"); return b }},
		{"overwrite with fdatasync stays", func(t *testing.T, p string) {
			writeAt(t, p, []byte("NEW"), 4094, 0)
			fdatasyncPath(t, p)
		}, func() []byte { b := bytes.Clone(old); copy(b[4094:], "NEW"); return b }},
		{"append without fsync is lost", func(t *testing.T, p string) {
			writeAt(t, p, []byte("tail"), 0, os.O_APPEND)
		}, func() []byte { return old }},
		{"append with fsync stays", func(t *testing.T, p string) {
			writeAt(t, p, []byte("tail"), 0, os.O_APPEND)
			syncPath(t, p)
		}, func() []byte { return append(bytes.Clone(old), "tail"...) }},
		{"truncate and append without fsync are lost", func(t *testing.T, p string) {
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
			writeAt(t, p, pattern(9000, 'x'), 0, os.O_APPEND)
		}, func() []byte { return old }},
		{"O_TRUNC without fsync is lost", func(t *testing.T, p string) {
			writeAt(t, p, []byte("short"), 0, os.O_TRUNC)
		}, func() []byte { return old }},
		{"truncate, append, fsync, then more is cut to the sync", func(t *testing.T, p string) {
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
			writeAt(t, p, []byte("mid"), 0, os.O_APPEND)
			syncPath(t, p)
			writeAt(t, p, []byte("late"), 0, os.O_APPEND)
			writeAt(t, p, []byte("X"), 0, 0)
		}, func() []byte { return append(bytes.Clone(old[:100]), "mid"...) }},
		{"extend by truncate without fsync is lost", func(t *testing.T, p string) {
			if err := os.Truncate(p, 50000); err != nil {
				t.Fatal(err)
			}
		}, func() []byte { return old }},
		{"two syncs keep the last", func(t *testing.T, p string) {
			writeAt(t, p, []byte("one"), 0, 0)
			syncPath(t, p)
			writeAt(t, p, []byte("two"), 8000, 0)
			syncPath(t, p)
			writeAt(t, p, []byte("three"), 9000, 0)
		}, func() []byte { b := bytes.Clone(old); copy(b, "one"); copy(b[8000:], "two"); return b }},
	}
	f, mnt := mount(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(mnt, fmt.Sprintf("f%d", i))
			writeDurable(t, p, old)
			tc.change(t, p)
			loss := cut(t, f)
			wantContent(t, p, tc.want())
			wantFiles := 1
			if strings.HasSuffix(tc.name, "stays") {
				wantFiles = 0
			}
			if loss.Files != wantFiles || loss.Entries != 0 {
				t.Errorf("cut reported %s; want %d files and no entries", loss, wantFiles)
			}
		})
	}
}

func TestEntries(t *testing.T) {
	f, mnt := mount(t)
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")

	t.Run("a synced file whose directory was not synced is gone", func(t *testing.T) {
		if err := os.WriteFile(a, []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
		syncPath(t, a)
		if loss := cut(t, f); loss.Entries != 1 {
			t.Errorf("cut reported %s; want 1 entry", loss)
		}
		wantAbsent(t, a)
	})
	t.Run("with the directory synced it stays", func(t *testing.T) {
		writeDurable(t, a, []byte("data"))
		cut(t, f)
		wantContent(t, a, []byte("data"))
	})
	t.Run("a file whose entry is durable but not its data is empty", func(t *testing.T) {
		if err := os.WriteFile(b, []byte("unsynced"), 0o600); err != nil {
			t.Fatal(err)
		}
		syncPath(t, mnt)
		cut(t, f)
		wantContent(t, b, nil)
	})
	t.Run("a rename without a directory sync is undone", func(t *testing.T) {
		tmp := filepath.Join(mnt, "a.tmp")
		if err := os.WriteFile(tmp, []byte("replacement"), 0o600); err != nil {
			t.Fatal(err)
		}
		syncPath(t, tmp)
		if err := os.Rename(tmp, a); err != nil {
			t.Fatal(err)
		}
		wantContent(t, a, []byte("replacement"))
		cut(t, f)
		wantContent(t, a, []byte("data"))
		wantAbsent(t, tmp)
	})
	t.Run("a rename with a directory sync stays", func(t *testing.T) {
		tmp := filepath.Join(mnt, "a.tmp")
		if err := os.WriteFile(tmp, []byte("replacement"), 0o600); err != nil {
			t.Fatal(err)
		}
		syncPath(t, tmp)
		if err := os.Rename(tmp, a); err != nil {
			t.Fatal(err)
		}
		syncPath(t, mnt)
		cut(t, f)
		wantContent(t, a, []byte("replacement"))
		wantAbsent(t, tmp)
	})
	t.Run("an unlink without a directory sync is undone", func(t *testing.T) {
		if err := os.Remove(a); err != nil {
			t.Fatal(err)
		}
		cut(t, f)
		wantContent(t, a, []byte("replacement"))
	})
	t.Run("an unlinked file comes back with its durable content", func(t *testing.T) {
		writeAt(t, a, []byte("R"), 0, 0)
		if err := os.Remove(a); err != nil {
			t.Fatal(err)
		}
		cut(t, f)
		wantContent(t, a, []byte("replacement"))
	})
	t.Run("a new directory needs its parent synced", func(t *testing.T) {
		d := filepath.Join(mnt, "d")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		writeDurable(t, filepath.Join(d, "x"), []byte("x"))
		cut(t, f)
		wantAbsent(t, d)
	})
	t.Run("a new directory synced in its parent but not itself is empty", func(t *testing.T) {
		d := filepath.Join(mnt, "d")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		syncPath(t, mnt)
		if err := os.WriteFile(filepath.Join(d, "x"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		syncPath(t, filepath.Join(d, "x"))
		cut(t, f)
		ents, err := os.ReadDir(d)
		if err != nil || len(ents) != 0 {
			t.Fatalf("d after the cut: %v, %v; want empty", ents, err)
		}
	})
	t.Run("a removed tree comes back", func(t *testing.T) {
		d := filepath.Join(mnt, "d")
		writeDurable(t, filepath.Join(d, "x"), []byte("x"))
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
		syncPath(t, mnt) // the rmdir is durable, not the unlink: d is gone
		cut(t, f)
		wantAbsent(t, d)
		if err := os.Mkdir(d+"2", 0o700); err != nil {
			t.Fatal(err)
		}
		writeDurable(t, filepath.Join(d+"2", "y"), nil)
		syncPath(t, mnt)
		if err := os.RemoveAll(d + "2"); err != nil {
			t.Fatal(err)
		}
		cut(t, f)
		wantContent(t, filepath.Join(d+"2", "y"), nil)
	})
	t.Run("a renamed directory goes back", func(t *testing.T) {
		if err := os.Rename(filepath.Join(mnt, "d2"), filepath.Join(mnt, "d3")); err != nil {
			t.Fatal(err)
		}
		cut(t, f)
		wantContent(t, filepath.Join(mnt, "d2", "y"), nil)
		wantAbsent(t, filepath.Join(mnt, "d3"))
	})
	t.Run("a hard link without a directory sync is gone", func(t *testing.T) {
		if err := os.Link(a, filepath.Join(mnt, "l")); err != nil {
			t.Fatal(err)
		}
		cut(t, f)
		wantAbsent(t, filepath.Join(mnt, "l"))
		wantContent(t, a, []byte("replacement"))
	})
}

// helper runs this test binary again as a child process doing what
// helperMain's case name says: code that maps files of the mount must not
// run in the process serving it (a page fault cannot be preempted, so the
// garbage collector's stop-the-world would wait for a fault that only the
// stopped server can answer).
func helper(t *testing.T, what string, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "POWERFS_HELPER="+what, "POWERFS_ARGS="+strings.Join(args, "\x00"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s: %v\n%s", what, err, out)
	}
	return string(out)
}

// TestHelperProcess is the child process of helper; alone it does nothing.
func TestHelperProcess(t *testing.T) {
	what := os.Getenv("POWERFS_HELPER")
	if what == "" {
		return
	}
	args := strings.Split(os.Getenv("POWERFS_ARGS"), "\x00")
	if err := helperMain(what, args); err != nil {
		fmt.Println("helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperMain(what string, args []string) error {
	switch what {
	case "mmap":
		fh, err := os.OpenFile(args[0], os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer fh.Close()
		m, err := unix.Mmap(int(fh.Fd()), 0, 64<<10, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
		defer unix.Munmap(m)
		if _, err := fh.WriteAt([]byte("synced"), 8192); err != nil {
			return err
		}
		if err := unix.Fdatasync(int(fh.Fd())); err != nil {
			return err
		}
		if _, err := fh.WriteAt([]byte("unsynced"), 20000); err != nil {
			return err
		}
		if got := string(m[8192:8198]); got != "synced" {
			return fmt.Errorf("mapping shows %q at 8192; want %q", got, "synced")
		}
		if got := string(m[20000:20008]); got != "unsynced" {
			return fmt.Errorf("mapping shows %q at 20000; want %q", got, "unsynced")
		}
		return nil
	case "bolt-put":
		// NoGrowSync: growing the file would otherwise fsync it, making
		// the unsynced transactions before it durable too.
		db, err := bbolt.Open(args[0], 0o600, &bbolt.Options{Timeout: 5 * time.Second, NoGrowSync: true})
		if err != nil {
			return err
		}
		put := func(from, to int) error {
			for i := from; i < to; i++ {
				err := db.Update(func(tx *bbolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists([]byte("b"))
					if err != nil {
						return err
					}
					return b.Put(fmt.Appendf(nil, "k%05d", i), bytes.Repeat([]byte{byte(i)}, 700))
				})
				if err != nil {
					return err
				}
			}
			return nil
		}
		if err := put(0, 200); err != nil {
			return err
		}
		db.NoSync = true
		if err := put(200, 400); err != nil {
			return err
		}
		return db.Close()
	case "bolt-count":
		db, err := bbolt.Open(args[0], 0o600, &bbolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bbolt.Tx) error {
			for e := range tx.Check() {
				return fmt.Errorf("bolt check: %w", e)
			}
			fmt.Printf("keys %d\n", tx.Bucket([]byte("b")).Stats().KeyN)
			return nil
		})
	}
	return fmt.Errorf("no helper %q", what)
}

// TestMmap reads a file through a shared read-only mapping while it is
// written with pwrite and fdatasync, as bbolt does with its file.
func TestMmap(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "m")
	writeDurable(t, p, make([]byte, 64<<10))
	helper(t, "mmap", p)
	cut(t, f)
	want := make([]byte, 64<<10)
	copy(want[8192:], "synced")
	wantContent(t, p, want)
}

// TestBolt runs bbolt on the mount: committed transactions survive a
// cut, transactions committed with NoSync do not, and the file opens.
func TestBolt(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "bolt.db")
	helper(t, "bolt-put", p)
	syncPath(t, mnt) // bbolt does not sync the directory of a new file
	if got := helper(t, "bolt-count", p); got != "keys 400\n" {
		t.Fatalf("bolt before the cut: %q; want 400 keys", got)
	}
	cut(t, f)
	if got := helper(t, "bolt-count", p); got != "keys 200\n" {
		t.Fatalf("bolt after the cut: %q; want the 200 synced keys", got)
	}
}

func TestCutWithOpenFileFails(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "open")
	writeDurable(t, p, []byte("x"))
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Cut(); !errors.Is(err, unix.EBUSY) {
		t.Errorf("cut with a file open: %v; want EBUSY", err)
	}
	fh.Close()
	wantContent(t, p, []byte("x"))
	cut(t, f)
	wantContent(t, p, []byte("x"))
}

func TestSyncDelay(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "slow")
	writeDurable(t, p, []byte("x"))
	const d = 50 * time.Millisecond
	f.SetSyncDelay(d)
	start := time.Now()
	syncPath(t, p)
	if took := time.Since(start); took < d {
		t.Fatalf("fsync took %s with a sync delay of %s", took, d)
	}
}

// TestModel runs random operations against the filesystem and a model of
// what a disk keeps, cuts, and compares.
func TestModel(t *testing.T) {
	f, mnt := mount(t)
	for round := range 20 {
		rng := mrand.New(mrand.NewPCG(uint64(round), 7))
		m := newModel(mnt)
		m.load(t)
		for range 60 {
			m.step(t, rng)
		}
		cut(t, f)
		m.cut()
		m.compare(t, round)
	}
}

// model is what the live files and the durable files should hold, in one
// flat directory.
type model struct {
	dir      string
	live     map[string]int // name -> file
	durable  map[string]int
	content  map[int][]byte // file -> live content
	dcontent map[int][]byte // file -> durable content
	next     int
}

func newModel(dir string) *model {
	return &model{dir: dir, live: map[string]int{}, durable: map[string]int{}, content: map[int][]byte{}, dcontent: map[int][]byte{}}
}

// load takes the directory as it is as durable.
func (m *model) load(t *testing.T) {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(m.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m.next++
		m.live[e.Name()], m.durable[e.Name()] = m.next, m.next
		m.content[m.next], m.dcontent[m.next] = b, bytes.Clone(b)
	}
}

func (m *model) names() []string {
	var ns []string
	for n := range m.live {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

func (m *model) step(t *testing.T, rng *mrand.Rand) {
	names := m.names()
	pick := func() string { return names[rng.IntN(len(names))] }
	fresh := fmt.Sprintf("n%d", rng.IntN(8))
	switch op := rng.IntN(9); {
	case op == 0 || len(names) == 0: // create (or truncate) a file
		fh, err := os.OpenFile(filepath.Join(m.dir, fresh), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		fh.Close()
		if id, ok := m.live[fresh]; ok {
			m.content[id] = nil
			return
		}
		m.next++
		m.live[fresh] = m.next
		m.content[m.next] = nil
		m.dcontent[m.next] = nil
	case op == 1: // write somewhere, maybe beyond the end
		n := pick()
		id := m.live[n]
		off := rng.IntN(len(m.content[id]) + 9000)
		data := pattern(1+rng.IntN(6000), byte(rng.IntN(200)))
		writeAt(t, filepath.Join(m.dir, n), data, int64(off), 0)
		c := m.content[id]
		if len(c) < off+len(data) {
			c = append(c, make([]byte, off+len(data)-len(c))...)
		}
		copy(c[off:], data)
		m.content[id] = c
	case op == 2: // truncate
		n := pick()
		id := m.live[n]
		size := rng.IntN(len(m.content[id]) + 5000)
		if err := os.Truncate(filepath.Join(m.dir, n), int64(size)); err != nil {
			t.Fatal(err)
		}
		c := m.content[id]
		if size <= len(c) {
			c = c[:size]
		} else {
			c = append(c, make([]byte, size-len(c))...)
		}
		m.content[id] = c
	case op == 3 || op == 4: // fsync a file
		n := pick()
		syncPath(t, filepath.Join(m.dir, n))
		m.dcontent[m.live[n]] = bytes.Clone(m.content[m.live[n]])
	case op == 5: // fsync the directory
		syncPath(t, m.dir)
		m.durable = map[string]int{}
		for n, id := range m.live {
			m.durable[n] = id
		}
	case op == 6: // rename, maybe over another
		n := pick()
		if n == fresh {
			return
		}
		if err := os.Rename(filepath.Join(m.dir, n), filepath.Join(m.dir, fresh)); err != nil {
			t.Fatal(err)
		}
		m.live[fresh] = m.live[n]
		delete(m.live, n)
	case op == 7: // unlink
		n := pick()
		if err := os.Remove(filepath.Join(m.dir, n)); err != nil {
			t.Fatal(err)
		}
		delete(m.live, n)
	case op == 8: // append
		n := pick()
		data := pattern(1+rng.IntN(3000), byte(rng.IntN(200)))
		writeAt(t, filepath.Join(m.dir, n), data, 0, os.O_APPEND)
		m.content[m.live[n]] = append(m.content[m.live[n]], data...)
	}
}

// cut makes the model what a disk keeps.
func (m *model) cut() {
	m.live = map[string]int{}
	for n, id := range m.durable {
		m.live[n] = id
	}
	for id, c := range m.dcontent {
		m.content[id] = bytes.Clone(c)
	}
}

func (m *model) compare(t *testing.T, round int) {
	t.Helper()
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if want := m.names(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("round %d: after the cut the directory lists %v; want %v", round, got, want)
	}
	for n, id := range m.live {
		b, err := os.ReadFile(filepath.Join(m.dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, m.content[id]) {
			t.Fatalf("round %d: %s holds %d bytes; want %d (first difference at %d)", round, n, len(b), len(m.content[id]), firstDiff(b, m.content[id]))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestPowerOff: once the power is off, a sync (here one waiting for a
// slow disk) fails and makes nothing durable.
func TestPowerOff(t *testing.T) {
	f, mnt := mount(t)
	p := filepath.Join(mnt, "p")
	writeDurable(t, p, []byte("old"))
	f.SetSyncDelay(10 * time.Millisecond)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte("new"), 0); err != nil {
		t.Fatal(err)
	}
	f.PowerOff()
	if err := fh.Sync(); !errors.Is(err, unix.EIO) {
		t.Errorf("fsync after power off: %v; want EIO", err)
	}
	fh.Close()
	if loss := cut(t, f); loss.Files != 1 {
		t.Errorf("cut reported %s; want 1 file", loss)
	}
	wantContent(t, p, []byte("old"))
	f.SetSyncDelay(0)
	writeAt(t, p, []byte("new"), 0, 0)
	syncPath(t, p) // powered on again by the cut
	cut(t, f)
	wantContent(t, p, []byte("new"))
}
