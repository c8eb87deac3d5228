package manager

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/testutil"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"
)

// Promise 1: nothing secret is plaintext on disk. Join tokens and the
// cluster CA key go through the raft log and its snapshots; after writes,
// a snapshot on every manager, more writes and a restart, no byte of any
// file in any data dir holds them, raw or encoded.
func TestNoPlaintextSecretOnDisk(t *testing.T) {
	c := newCluster(t, 3, 0)
	var canaries []canary
	addToken := func(tok string) {
		t.Helper()
		secret := tok[strings.LastIndex(tok, "-")+1:]
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
		if err != nil || len(secret) < 32 {
			t.Fatalf("token secret %d chars (%v); want a base32 secret", len(secret), err)
		}
		n := len(canaries)
		canaries = append(canaries,
			canary{fmt.Sprintf("token secret %d", n), []byte(secret)},
			canary{fmt.Sprintf("token secret %d (decoded)", n), raw})
	}
	addToken(c.init.ManagerToken)
	addToken(c.init.WorkerToken)
	rotate := func(rounds int) {
		t.Helper()
		running := c.followers(nil) // every running manager
		for i := range rounds {
			addToken(writeToken(t, running[i%len(running)], []ca.Role{ca.RoleWorker, ca.RoleManager}[i%2]))
		}
	}
	rotate(6)

	// The CA key, as the FSM holds it: the PEM, the PKCS#8 DER inside it,
	// and the private scalar inside that.
	var keyPEM []byte
	c.managers[0].node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) {
		keyPEM = bytes.Clone(s.Cluster.RootKeyPEM)
	})
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatalf("CA key: got %q; want a PEM block", keyPEM)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("CA key: %v", err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("CA key: got %T; want *ecdsa.PrivateKey", key)
	}
	scalar, err := ek.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	canaries = append(canaries,
		canary{"CA key PEM", keyPEM},
		canary{"CA key DER", block.Bytes},
		canary{"CA key scalar", scalar})

	for _, m := range c.managers {
		forceSnapshot(t, m)
	}
	rotate(4)

	// One node restarts (from its sealed snapshot and log) and catches up
	// on writes made while it was down.
	f := c.followers(c.leader())[0]
	f.stop()
	rotate(3)
	f.start()
	waitCaughtUp(t, c, f)
	for _, m := range c.managers {
		m.stop()
	}

	var dirs []string
	for _, m := range c.managers {
		dirs = append(dirs, m.dir)
		// The scan must cover the sealed log and a snapshot, or it proves nothing.
		for _, pat := range []string{filepath.Join(m.dir, "raft", raftlog.DBFile), filepath.Join(m.dir, "raft", "snapshots", "*.snap")} {
			if got, _ := filepath.Glob(pat); len(got) == 0 {
				t.Fatalf("%s: got no file matching %s; want the sealed raft files", m.name, pat)
			}
		}
	}
	needles := needlesOf(canaries)
	for _, hit := range scanFiles(t, dirs, needles) {
		t.Errorf("got %s (%s) in %s at offset %d; want it nowhere on disk", hit.canary, hit.enc, hit.file, hit.off)
	}

	// The scanner finds a canary planted in a data dir, in every encoding.
	der := block.Bytes
	b64 := func(enc *base64.Encoding, prefix string, b []byte) []byte {
		return []byte(enc.EncodeToString(append([]byte(prefix), b...)))
	}
	planted := []struct {
		name    string
		content []byte
		want    string // the canary the scanner must name
	}{
		{"raw token secret", canaries[0].b, canaries[0].name},
		{"hex of the CA key", []byte(hex.EncodeToString(der)), "CA key DER"},
		{"upper-case hex of the scalar", []byte(strings.ToUpper(hex.EncodeToString(scalar))), "CA key scalar"},
		{"base64 of the CA key", b64(base64.StdEncoding, "", der), "CA key DER"},
		{"base64 of the CA key after 1 byte", b64(base64.StdEncoding, "x", der), "CA key DER"},
		{"base64url of the CA key after 2 bytes", b64(base64.URLEncoding, "xy", der), "CA key DER"},
		{"base64url of a token after 1 byte", b64(base64.RawURLEncoding, "?", canaries[2].b), canaries[2].name},
	}
	for _, p := range planted {
		t.Run("scanner finds "+p.name, func(t *testing.T) {
			path := filepath.Join(c.managers[1].dir, "raft", "planted")
			content := slices.Concat([]byte("junk before "), p.content, []byte(" junk after"))
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(path)
			found := false
			for _, hit := range scanFiles(t, dirs, needles) {
				found = found || hit.file == path && hit.canary == p.want
			}
			if !found {
				t.Errorf("got no finding of %s in %s; want the scanner to find it", p.want, path)
			}
		})
	}
}

// canary is a secret that must never be on disk.
type canary struct {
	name string
	b    []byte
}

// needle is one encoding of a canary, as it would appear in a file.
type needle struct {
	canary, enc string
	b           []byte
}

// needlesOf returns every canary raw, in hex (both cases), and in base64
// (standard and URL alphabets) at each of the 3 alignments it can have in
// a longer encoded text: the characters that also depend on neighbouring
// bytes are cut off both ends.
func needlesOf(cs []canary) []needle {
	var out []needle
	for _, c := range cs {
		out = append(out,
			needle{c.name, "raw", c.b},
			needle{c.name, "hex", []byte(hex.EncodeToString(c.b))},
			needle{c.name, "HEX", []byte(strings.ToUpper(hex.EncodeToString(c.b)))})
		for _, enc := range []struct {
			name string
			e    *base64.Encoding
		}{{"base64", base64.RawStdEncoding}, {"base64url", base64.RawURLEncoding}} {
			for k := range 3 {
				s := enc.e.EncodeToString(append(make([]byte, k), c.b...))
				start := (8*k + 5) / 6        // first character made of canary bits only
				end := 8 * (k + len(c.b)) / 6 // last character with no padding bits
				out = append(out, needle{c.name, fmt.Sprintf("%s at offset %d", enc.name, k), []byte(s[start:end])})
			}
		}
	}
	return out
}

type finding struct {
	file, canary, enc string
	off               int
}

// scanFiles looks for every needle in every byte of every file under dirs.
func scanFiles(t *testing.T, dirs []string, ns []needle) []finding {
	t.Helper()
	var out []finding
	files := 0
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			for _, n := range ns {
				if i := bytes.Index(b, n.b); i >= 0 {
					out = append(out, finding{file: p, canary: n.canary, enc: n.enc, off: i})
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		t.Fatalf("scanned no files in %v", dirs)
	}
	return out
}

func forceSnapshot(t *testing.T, tn *testNode) {
	t.Helper()
	if err := tn.node.current().rn().r.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot on %s: %v", tn.name, err)
	}
}

// waitCaughtUp waits until tn has applied everything the leader has.
func waitCaughtUp(t *testing.T, c *testCluster, tn *testNode) {
	t.Helper()
	want := c.leader().status().Raft.AppliedIndex
	eventually(t, 10*time.Second, tn.name+" catching up", func() bool {
		return tn.status().Raft.AppliedIndex >= want
	})
}

// Promise 5: a follower whose log or newest snapshot was tampered with
// refuses to start, with an error naming the file (and the entry) and
// saying how to recover, and never serves; the rest of the cluster goes on.
func TestTamperedLogRefusesToStart(t *testing.T) {
	// Another cluster, to copy an entry from.
	foreign := newCluster(t, 1, 0).managers[0]

	c := newCluster(t, 3, 0)
	l := c.leader()
	fol := c.followers(l)
	f, peer := fol[0], fol[1]
	addr := f.status().Addr
	write := func(via *testNode, n int) {
		t.Helper()
		for range n {
			if _, err := via.client.RotateJoinToken(ctxT(t), "worker"); err != nil {
				t.Fatalf("write through %s: %v", via.name, err)
			}
		}
	}
	// f keeps only a few entries before its snapshot, as a long-running
	// node does, so its state needs both the snapshot and the log.
	f.stop()
	f.cfg.TrailingLogs = 2
	f.start()
	write(l, 8)
	waitCaughtUp(t, c, f)
	forceSnapshot(t, f)
	write(peer, 8)
	waitCaughtUp(t, c, f)
	f.stop()

	raftDir := filepath.Join(f.dir, "raft")
	db := filepath.Join(raftDir, raftlog.DBFile)
	snaps, _ := filepath.Glob(filepath.Join(raftDir, "snapshots", "*.snap"))
	if len(snaps) != 1 {
		t.Fatalf("got snapshots %v; want one", snaps)
	}
	snap := snaps[0]
	vals := boltLogs(t, db)
	idxs := slices.Sorted(maps.Keys(vals))
	if len(idxs) < 8 || idxs[0] == 1 {
		t.Fatalf("got log indexes %v; want a compacted log of at least 8 entries", idxs)
	}
	// idx is a command entry in the middle of the log, idx+1 follows it.
	var idx uint64
	for _, i := range idxs[len(idxs)/2:] {
		if decodeLog(t, vals[i]).Type == raft.LogCommand && vals[i+1] != nil {
			idx = i
			break
		}
	}
	if idx == 0 {
		t.Fatalf("no command entry followed by another in %v", idxs)
	}

	for foreign.status().Raft.LastIndex < idx {
		write(foreign, 1)
	}
	foreign.stop()
	foreignVal := boltLogs(t, filepath.Join(foreign.dir, "raft", raftlog.DBFile))[idx]

	pristine := t.TempDir()
	copyTree(t, f.dir, pristine)

	snapHeaderLen := func(b []byte) int { return 6 + 1 + 8 + 4 + int(binary.BigEndian.Uint32(b[15:19])) }
	tests := []struct {
		name    string
		tamper  func(t *testing.T)
		file    string
		index   uint64 // the entry the error names; 0 for snapshots
		wantErr error
	}{
		{"flip a byte of an entry's data", func(t *testing.T) {
			editBolt(t, db, func(get func(uint64) []byte, put func(uint64, []byte)) {
				v := get(idx)
				data := decodeLog(t, v).Data
				at := bytes.Index(v, data)
				if len(data) == 0 || at < 0 {
					t.Fatalf("entry %d: data not found in the stored value", idx)
				}
				v[at+len(data)/2] ^= 0x01
				put(idx, v)
			})
		}, db, idx, raftlog.ErrTampered},
		{"swap two entries", func(t *testing.T) {
			editBolt(t, db, func(get func(uint64) []byte, put func(uint64, []byte)) {
				a, b := get(idx), get(idx+1)
				put(idx, b)
				put(idx+1, a)
			})
		}, db, idx, raftlog.ErrTampered},
		{"entry from another cluster at the same index", func(t *testing.T) {
			editBolt(t, db, func(_ func(uint64) []byte, put func(uint64, []byte)) { put(idx, foreignVal) })
		}, db, idx, raftlog.ErrUnknownKey},
		{"delete the newest two entries", func(t *testing.T) {
			deleteBoltEntries(t, db, idxs[len(idxs)-2], idxs[len(idxs)-1])
		}, db, 0, raftlog.ErrRolledBack},
		{"delete an entry in the middle", func(t *testing.T) {
			deleteBoltEntries(t, db, idx, idx)
		}, db, 0, raftlog.ErrRolledBack},
		{"flip a byte of the term record", func(t *testing.T) {
			editBoltConf(t, db, "CurrentTerm", func(v []byte) { v[len(v)/2] ^= 0x01 })
		}, db, 0, raftlog.ErrTampered},
		{"truncate the snapshot by one byte", func(t *testing.T) {
			resize(t, snap, -1)
		}, snap, 0, raftlog.ErrTampered},
		{"truncate the snapshot by half", func(t *testing.T) {
			fi, err := os.Stat(snap)
			if err != nil {
				t.Fatal(err)
			}
			resize(t, snap, -fi.Size()/2)
		}, snap, 0, raftlog.ErrTampered},
		{"append a byte to the snapshot", func(t *testing.T) {
			appendFile(t, snap, []byte{0})
		}, snap, 0, raftlog.ErrTampered},
		{"append a chunk to the snapshot", func(t *testing.T) {
			appendFile(t, snap, bytes.Repeat([]byte{0xa5}, 64+16))
		}, snap, 0, raftlog.ErrTampered},
		{"truncate the snapshot to its header", func(t *testing.T) {
			b, err := os.ReadFile(snap)
			if err != nil {
				t.Fatal(err)
			}
			resize(t, snap, int64(snapHeaderLen(b)-len(b)))
		}, snap, 0, raftlog.ErrTampered},
		{"truncate the snapshot to nothing", func(t *testing.T) {
			if err := os.Truncate(snap, 0); err != nil {
				t.Fatal(err)
			}
		}, snap, 0, raftlog.ErrTampered},
	}
	leaked := false // a Run that panicked left f's port and socket open
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if leaked {
				t.Skip("an earlier case panicked and left the node's port open")
			}
			restoreTree(t, pristine, f.dir)
			tc.tamper(t)

			answered, panicked, err := runUntilServing(t, f.cfg)
			if panicked != nil {
				leaked = true
				t.Fatalf("Run panicked: %v; want an error naming %s", panicked, tc.file)
			}
			if answered {
				t.Errorf("the tampered node answered on its control socket; want it never to serve")
			}
			if err == nil {
				t.Fatalf("Run: got nil; want an error naming %s", tc.file)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Run: got %v; want an error wrapping %q", err, tc.wantErr)
			}
			msg := err.Error()
			for _, want := range []string{tc.file, "restore", "peers", "backup"} {
				if !strings.Contains(msg, want) {
					t.Errorf("Run: got %q; want it to contain %q", msg, want)
				}
			}
			if tc.index != 0 {
				var re *raftlog.RecordError
				if !errors.As(err, &re) || re.Path != db || re.Index != tc.index {
					t.Errorf("Run: got %v; want a *raftlog.RecordError for %s entry %d", err, db, tc.index)
				}
			} else if tc.file == db {
				var se *raftlog.StateError
				if (!errors.As(err, &se) || se.Path != db) && !strings.Contains(msg, "raft stable store "+db) {
					t.Errorf("Run: got %v; want a *raftlog.StateError or a stable value error for %s", err, db)
				}
			} else {
				var se *raftlog.SnapshotError
				if !errors.As(err, &se) || se.Path != snap {
					t.Errorf("Run: got %v; want a *raftlog.SnapshotError for %s", err, snap)
				}
			}
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				t.Errorf("dial %s after Run returned: got a connection; want the port closed", addr)
			}
			// The rest of the cluster keeps working.
			write(peer, 1)
		})
	}

	// The untouched copy starts, rejoins and catches up: the errors above
	// came from the tampering, not from the copy.
	if leaked {
		return
	}
	restoreTree(t, pristine, f.dir)
	f.start()
	write(peer, 1)
	waitCaughtUp(t, c, f)
}

// runUntilServing runs a node until Run returns, polling its control
// socket meanwhile; a node that answers is stopped and reported. A panic
// in Run is returned rather than ending the test binary.
func runUntilServing(t *testing.T, cfg Config) (answered bool, panicked any, runErr error) {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	panics := make(chan any, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				panics <- p
			}
		}()
		done <- n.Run(ctx)
	}()
	cl := api.NewUnixClient(cfg.socketPath())
	defer cl.Close()
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case runErr = <-done:
			return true, ""
		case panicked = <-panics:
			return true, ""
		default:
		}
		if !answered {
			sctx, scancel := context.WithTimeout(ctx, time.Second)
			_, err := cl.Status(sctx)
			scancel()
			if err == nil {
				answered = true
				cancel()
			}
		}
		return false, "Run to fail or serve"
	})
	return answered, panicked, runErr
}

// After a DEK rotation (sealedLog.rotateDEK), nothing on the node's disk opens under the old DEK, its
// key ID is in no file, the key file holds only the new key, everything
// opens under the new key, and the node rejoins after a restart.
func TestDEKRotationRetiresOldKey(t *testing.T) {
	c := newCluster(t, 3, 0)
	n := c.leader() // the busiest node: raft writes while it rotates
	write := func(via *testNode, rounds int) string {
		t.Helper()
		var tok string
		for range rounds {
			tok = writeToken(t, via, "manager")
		}
		return tok
	}
	nodeID := n.status().NodeID
	oldKF, err := n.node.keyFiles.LoadDEKs(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	old := oldKF.Current
	write(n, 5)
	forceSnapshot(t, n)
	write(c.followers(n)[0], 5)
	// Writes go on through a follower while the leader rotates.
	stop, wrote := make(chan struct{}), make(chan error, 1)
	go func() {
		cl := c.followers(n)[1].client
		for {
			select {
			case <-stop:
				wrote <- nil
				return
			default:
			}
			if _, err := cl.RotateJoinToken(context.Background(), "worker"); err != nil {
				wrote <- err
				return
			}
		}
	}()
	err = n.node.sealed.rotateDEK(ctxT(t))
	close(stop)
	if werr := <-wrote; werr != nil {
		t.Errorf("write during the rotation: %v", werr)
	}
	if err != nil {
		t.Fatalf("rotateDEK: %v", err)
	}
	write(n, 5)
	n.stop()

	kf, err := n.node.keyFiles.LoadDEKs(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(n.node.dir.path(keyfiles.DEKFile)); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: got %v; want 0600", fi.Mode().Perm())
	}
	if kf.Current.Equal(old) || len(kf.Previous) != 0 {
		t.Fatalf("key file: got current %v (old %v) and %d previous keys; want only a new key", kf.Current.ID(), old.ID(), len(kf.Previous))
	}

	// Every record carries its key ID in the clear, so a record sealed
	// under the old key, live or on a free page, would show its ID.
	oldID := old.ID()
	scan := []needle{{"old DEK ID", "raw", oldID[:]}, {"old DEK", "raw", old.Bytes()}}
	for _, hit := range scanFiles(t, []string{n.dir}, scan) {
		t.Errorf("got the %s in %s at offset %d; want it in no file", hit.canary, hit.file, hit.off)
	}

	raftDir := filepath.Join(n.dir, "raft")
	for _, tc := range []struct {
		name  string
		keys  *raftlog.Keyring
		opens bool
	}{
		{"old key", raftlog.NewKeyring(old), false},
		{"new key", raftlog.NewKeyring(kf.Current), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := n.node.dir.loadNodeInfo()
			if err != nil {
				t.Fatal(err)
			}
			opts := raftlog.Options{ClusterID: c.init.ClusterID, NodeID: info.NodeID, Keys: tc.keys}
			store, err := raftlog.Open(raftDir, opts)
			switch {
			case !tc.opens && errors.Is(err, raftlog.ErrUnknownKey):
				// Not even the sealed log state opens under the old key.
			case err != nil:
				t.Fatal(err)
			default:
				func() {
					defer store.Close()
					first, err1 := store.FirstIndex()
					last, err2 := store.LastIndex()
					if err := errors.Join(err1, err2); err != nil || first == 0 || last < first {
						t.Fatalf("log bounds: got %d..%d, %v; want a non-empty log", first, last, err)
					}
					for i := first; i <= last; i++ {
						var l raft.Log
						err := store.GetLog(i, &l)
						if tc.opens && err != nil {
							t.Errorf("entry %d: got %v; want it to open", i, err)
						}
						if !tc.opens && !errors.Is(err, raftlog.ErrUnknownKey) {
							t.Errorf("entry %d: got %v; want ErrUnknownKey", i, err)
						}
					}
				}()
			}
			snaps, err := raftlog.NewSnapshotStore(raftDir, 2, opts)
			if err != nil {
				t.Fatal(err)
			}
			metas, err := snaps.List()
			if err != nil || len(metas) == 0 {
				t.Fatalf("snapshots: got %d, %v; want at least one", len(metas), err)
			}
			for _, m := range metas {
				_, rc, err := snaps.Open(m.ID)
				if err == nil {
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
				if tc.opens && err != nil {
					t.Errorf("snapshot %s: got %v; want it to open", m.ID, err)
				}
				if !tc.opens && !errors.Is(err, raftlog.ErrUnknownKey) {
					t.Errorf("snapshot %s: got %v; want ErrUnknownKey", m.ID, err)
				}
			}
		})
	}

	// Restarted, the node rejoins and catches up on what it missed.
	want := write(c.followers(n)[0], 2)
	n.start()
	waitCaughtUp(t, c, n)
	if got, err := n.client.JoinToken(ctxT(t), "manager"); err != nil || got.Token != want {
		t.Errorf("restarted node: got %v, %v; want token %q", got, err, want)
	}
}

// writeToken rotates a join token through via and returns it. While a
// leader hands over, a write may fail with 503 (outcome unknown); it is
// retried, as a client would.
func writeToken(t *testing.T, via *testNode, role ca.Role) string {
	t.Helper()
	var tok string
	eventually(t, 10*time.Second, "a write through "+via.name, func() bool {
		jt, err := via.client.RotateJoinToken(ctxT(t), role)
		if err != nil && apiStatus(err) != http.StatusServiceUnavailable {
			t.Fatalf("write through %s: %v", via.name, err)
		}
		if err == nil {
			tok = jt.Token
		}
		return err == nil
	})
	return tok
}

// boltLogs returns the stored values of raft.db's logs bucket by index.
func boltLogs(t *testing.T, path string) map[uint64][]byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[uint64][]byte{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("logs")).ForEach(func(k, v []byte) error {
			out[binary.BigEndian.Uint64(k)] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editBolt lets f read and replace values of raft.db's logs bucket.
func editBolt(t *testing.T, path string, f func(get func(uint64) []byte, put func(uint64, []byte))) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("logs"))
		key := func(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }
		var perr error
		f(func(i uint64) []byte { return bytes.Clone(b.Get(key(i))) },
			func(i uint64, v []byte) { perr = errors.Join(perr, b.Put(key(i), bytes.Clone(v))) })
		return perr
	})
	if err != nil {
		t.Fatal(err)
	}
}

// decodeLog decodes a stored value as raft-boltdb does.
func decodeLog(t *testing.T, v []byte) raft.Log {
	t.Helper()
	var l raft.Log
	if err := codec.NewDecoderBytes(v, &codec.MsgpackHandle{}).Decode(&l); err != nil {
		t.Fatalf("decode stored log: %v", err)
	}
	return l
}

func resize(t *testing.T, path string, delta int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()+delta); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the files under src into dst, keeping their modes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm())
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// restoreTree makes dir an exact copy of pristine.
func restoreTree(t *testing.T, pristine, dir string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	copyTree(t, pristine, dir)
}

// deleteBoltEntries deletes entries lo..hi from the bolt file at path, as
// someone with the stopped node's disk could with a few lines of bbolt.
func deleteBoltEntries(t *testing.T, path string, lo, hi uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		for i := lo; i <= hi; i++ {
			if err := tx.Bucket([]byte("logs")).Delete(binary.BigEndian.AppendUint64(nil, i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// editBoltConf lets edit change the stable store value under key in the
// bolt file at path.
func editBoltConf(t *testing.T, path, key string, edit func(v []byte)) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("conf"))
		v := bytes.Clone(b.Get([]byte(key)))
		if v == nil {
			return fmt.Errorf("no %s in %s", key, path)
		}
		edit(v)
		return b.Put([]byte(key), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}
