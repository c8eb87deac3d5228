package datadir

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/backup"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/secrets"
)

const (
	testPassphrase = "a passphrase long enough"
	testSecret     = "CANARY-datadir-secret-5c1f"
)

// cheapArgon2 keeps the tests fast; the format is the same at any cost.
var cheapArgon2 = backup.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// testState is a cluster's replicated state, made without a cluster: a
// root CA, the first manager, and one secret. With an unlock key,
// autolock is on.
func testState(t *testing.T, unlockKey string) (st []byte, index uint64, clusterID string) {
	t.Helper()
	now := time.Now().UTC()
	clusterID = ca.NewID()
	root, err := ca.NewRoot(clusterID, now)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := ca.NewToken(root)
	mt, _ := ca.NewToken(root)
	f := fsm.New(nil)
	cmds := []fsm.Command{
		&fsm.ClusterInit{
			Cluster: fsm.Cluster{ID: clusterID, CreatedAt: now,
				Settings:    fsm.Settings{CertExpiry: 2160 * time.Hour, KeyRotation: 12 * time.Hour, Autolock: unlockKey != ""},
				RootCertPEM: root.CertPEM(), RootKeyPEM: root.KeyPEM(), WorkerToken: wt.String(), ManagerToken: mt.String(), UnlockKey: unlockKey},
			First: fsm.Node{ID: ca.NewID(), Role: ca.RoleManager, Addr: "127.0.0.1:4242", CreatedAt: now},
		},
		&fsm.SecretCreate{CreateCmd: secrets.CreateCmd{ID: ca.NewID(), Name: "db", Data: []byte(testSecret), CreatedAt: now}},
	}
	for _, c := range cmds {
		b, err := fsm.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: f.Index() + 1, Term: 3, Type: raft.LogCommand, Data: b}).(*fsm.Result); r.Err != nil {
			t.Fatalf("apply %s: %v", c.Type(), r.Err)
		}
	}
	data, index, err := f.SnapshotData()
	if err != nil {
		t.Fatal(err)
	}
	return data, index, clusterID
}

// writeBackup seals a state into a backup file, under the unlock key
// when there is one, else under testPassphrase.
func writeBackup(t *testing.T, unlockKey string) (path, clusterID string) {
	t.Helper()
	data, index, clusterID := testState(t, unlockKey)
	meta := backup.Meta{ClusterID: clusterID, Index: index, Term: 3, CreatedAt: time.Now().UTC(), Autolock: unlockKey != "", Size: int64(len(data))}
	var (
		h   *backup.Header
		key seal.Key
		err error
	)
	if unlockKey != "" {
		uk, perr := autolock.ParseKey(unlockKey)
		if perr != nil {
			t.Fatal(perr)
		}
		h, key, err = backup.ForUnlockKey(uk, meta)
	} else {
		h, key, err = backup.ForPassphrase([]byte(testPassphrase), meta, cheapArgon2)
	}
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := backup.NewWriter(&buf, h, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "backup.hfb")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, clusterID
}

func keyFn(k string) func() (string, error) { return func() (string, error) { return k, nil } }

// TestRestoreBackup restores a backup sealed with a passphrase: refusals
// leave the target as it was; a restore writes a manager's data dir with
// the restore pending, whose log the offline reader opens.
func TestRestoreBackup(t *testing.T) {
	path, clusterID := writeBackup(t, "")
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "restored")

	if _, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: path}); err == nil || !strings.Contains(err.Error(), "neither an unlock key nor a passphrase") {
		t.Errorf("no key: got %v; want a config error", err)
	}
	if _, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: path, Passphrase: []byte("not the passphrase at all")}); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: got %v; want ErrWrongPassphrase", err)
	}
	if _, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: path, UnlockKey: autolock.NewKey().String()}); err == nil || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Errorf("an unlock key for a passphrase backup: got %v; want a hint about --passphrase-file", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	bad := filepath.Join(t.TempDir(), "bad.hfb")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: bad, Passphrase: []byte(testPassphrase)}); !errors.Is(err, backup.ErrTampered) {
		t.Errorf("flipped byte: got %v; want backup.ErrTampered", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore left %s behind (stat: %v)", target, err)
	}
	occupied := t.TempDir()
	if err := os.WriteFile(filepath.Join(occupied, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(ctx, RestoreConfig{DataDir: occupied, Backup: path, Passphrase: []byte(testPassphrase)}); !errors.Is(err, ErrTargetNotEmpty) {
		t.Errorf("non-empty target: got %v; want ErrTargetNotEmpty", err)
	}

	var reports int
	res, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: path, Passphrase: []byte(testPassphrase), Progress: func(done, total int64) { reports++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.ClusterID != clusterID || res.Secrets != 1 || res.Nodes != 2 || res.Autolock || reports == 0 {
		t.Errorf("restore = %+v after %d progress reports; want cluster %s, 2 nodes, 1 secret, autolock off", res, reports, clusterID)
	}
	info, err := LoadInfo(target, fsm.CurrentLevel)
	if err != nil || info == nil || info.NodeID != res.NodeID || info.ClusterID != clusterID || info.Role != ca.RoleManager || info.ReadLevel != ReadLevel {
		t.Errorf("node.json = %+v, %v; want manager %s of %s", info, err, res.NodeID, clusterID)
	}
	if _, ok := keyfiles.WrappedKEKID(target); ok {
		t.Error("autolock is off in the backup, yet the restored key files are wrapped")
	}
	raftDir := filepath.Join(target, RaftDir)
	if !RestorePending(raftDir) {
		t.Error("no restore pending after a restore")
	}
	certs, err := keyfiles.New(target).LoadCerts(res.NodeID)
	if err != nil {
		t.Fatalf("the restored certificates: %v", err)
	}
	leaf, err := ca.ParseCertPEM(certs.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.IdentityOf(leaf[0])
	if err != nil || id.NodeID != res.NodeID || id.Role != ca.RoleManager || id.ClusterID != clusterID {
		t.Errorf("restored certificate identity = %+v, %v; want manager %s of %s", id, err, res.NodeID, clusterID)
	}

	// The offline reader opens the restored log: no entries, and the
	// snapshot holds the backed-up state with this node in it, addressless.
	o, err := OpenOffline(target, keyFn(""))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.NodeID != res.NodeID || o.ClusterID != clusterID {
		t.Errorf("offline log of node %s, cluster %s; want %s, %s", o.NodeID, o.ClusterID, res.NodeID, clusterID)
	}
	var entries int
	if err := o.Entries(func(*raft.Log) error { entries++; return nil }); err != nil || entries != 0 {
		t.Errorf("entries: %d, %v; want none", entries, err)
	}
	var snaps int
	if err := o.Snapshots(func(meta *raft.SnapshotMeta, data []byte) error {
		snaps++
		st, index, err := fsm.DecodeSnapshot(data)
		if err != nil {
			return err
		}
		if meta.Index != index || meta.Term != 3 {
			t.Errorf("snapshot at %d/%d; want index %d, term 3", meta.Index, meta.Term, index)
		}
		if sec, ok := st.Secrets.Get("db"); !ok || string(sec.Data) != testSecret {
			t.Error("the restored snapshot lacks the secret")
		}
		if n := st.Nodes[res.NodeID]; n == nil || n.Role != ca.RoleManager || n.Addr != "" {
			t.Errorf("the restored node's record = %+v; want a manager with no address yet", n)
		}
		return nil
	}); err != nil || snaps != 1 {
		t.Errorf("snapshots: %d, %v; want one", snaps, err)
	}
	o.Close()

	if err := FinishRestore(raftDir); err != nil {
		t.Fatal(err)
	}
	if RestorePending(raftDir) {
		t.Error("a restore is still pending after FinishRestore")
	}
}

// TestRestoreAutolocked restores a backup sealed under the unlock key: the
// restored key files are wrapped, and the offline reader needs the key.
func TestRestoreAutolocked(t *testing.T) {
	uk := autolock.NewKey()
	key := uk.String()
	path, _ := writeBackup(t, key)
	h, err := ReadBackupHeader(path)
	if err != nil || h.KDF != backup.KDFUnlockKey || !h.Meta.Autolock {
		t.Fatalf("header = %+v, %v; want one keyed from the unlock key", h, err)
	}
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: path, UnlockKey: autolock.NewKey().String()}); !errors.Is(err, ErrWrongBackupKey) || !strings.Contains(err.Error(), "invalid unlock key") {
		t.Errorf("wrong unlock key: got %v; want invalid unlock key", err)
	}
	if _, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: path, Passphrase: []byte(testPassphrase)}); err == nil || !strings.Contains(err.Error(), "--key-file") {
		t.Errorf("a passphrase for an unlock-key backup: got %v; want a hint about --key-file", err)
	}
	res, err := RestoreBackup(ctx, RestoreConfig{DataDir: target, Backup: path, UnlockKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Autolock {
		t.Errorf("restore = %+v; want autolock on", res)
	}
	if id, ok := keyfiles.WrappedKEKID(target); !ok || id != uk.KEK().ID() {
		t.Error("the restored key files are not both wrapped under the unlock key")
	}
	if _, err := OpenOffline(target, keyFn("")); err == nil || !strings.Contains(err.Error(), "--key-file") {
		t.Errorf("no key: got %v; want a hint about --key-file", err)
	}
	if _, err := OpenOffline(target, keyFn(autolock.NewKey().String())); err == nil || !strings.Contains(err.Error(), "invalid unlock key") {
		t.Errorf("wrong key: got %v; want invalid unlock key", err)
	}
	o, err := OpenOffline(target, keyFn(key))
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
}

// TestOpenOfflineRefuses: a dir whose control socket answers is a running
// node's; a dir with no node, or a worker's (no raft log), has nothing to
// read.
func TestOpenOfflineRefuses(t *testing.T) {
	empty := t.TempDir()
	if _, err := OpenOffline(empty, keyFn("")); err == nil || !strings.Contains(err.Error(), "no node.json") {
		t.Errorf("an empty dir: got %v; want no node.json", err)
	}
	worker := t.TempDir()
	if err := SaveInfo(worker, &Info{NodeID: "n1", ClusterID: "c1", Role: ca.RoleWorker}, fsm.CurrentLevel); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenOffline(worker, keyFn("")); err == nil || !strings.Contains(err.Error(), "only managers keep one") {
		t.Errorf("a worker's dir: got %v; want no raft log", err)
	}
	running := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(running, SocketFile))
	if err != nil {
		t.Skipf("no unix socket here: %v", err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := OpenOffline(running, keyFn("")); !errors.Is(err, ErrNodeRunning) {
		t.Errorf("a dir whose socket answers: got %v; want ErrNodeRunning", err)
	}
}

// TestInfoLevels: node.json records the level that wrote it; a build
// below its read level refuses it, naming both.
func TestInfoLevels(t *testing.T) {
	dir := t.TempDir()
	if info, err := LoadInfo(dir, fsm.CurrentLevel); info != nil || err != nil {
		t.Fatalf("no node.json: got %+v, %v; want nil, nil", info, err)
	}
	in := &Info{NodeID: "n1", ClusterID: "c1", Role: ca.RoleManager, AdvertiseAddr: "10.0.0.1:4242"}
	if err := SaveInfo(dir, in, fsm.CurrentLevel); err != nil {
		t.Fatal(err)
	}
	if in.Level != 0 || in.ReadLevel != 0 || in.Format != infoFormat {
		t.Errorf("SaveInfo changed the caller's levels or left its format: %+v", in)
	}
	got, err := LoadInfo(dir, fsm.CurrentLevel)
	if err != nil || got.NodeID != "n1" || got.AdvertiseAddr != "10.0.0.1:4242" || got.Level != fsm.CurrentLevel || got.ReadLevel != ReadLevel {
		t.Errorf("LoadInfo = %+v, %v; want what was saved, at level %d, read level %d", got, err, fsm.CurrentLevel, ReadLevel)
	}
	fi, err := os.Stat(filepath.Join(dir, InfoFile))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("node.json mode = %v, %v; want 0644", fi.Mode(), err)
	}
	// A newer build raised the read level.
	b, _ := os.ReadFile(filepath.Join(dir, InfoFile))
	b = bytes.Replace(b, []byte(`"read_level": 1`), []byte(`"read_level": 99`), 1)
	if err := os.WriteFile(filepath.Join(dir, InfoFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInfo(dir, fsm.CurrentLevel); !errors.Is(err, ErrLevel) || !strings.Contains(err.Error(), "needs a build of level 99") {
		t.Errorf("a data dir of read level 99: got %v; want ErrLevel naming level 99", err)
	}
}

// TestFillOwnAddr: the node's record gets its address through apply,
// retried after a failure until applied; a record with an address is
// left alone.
func TestFillOwnAddr(t *testing.T) {
	f := fsm.New(nil)
	apply := func(c fsm.Command) error {
		b, err := fsm.Encode(c)
		if err != nil {
			return err
		}
		return f.Apply(&raft.Log{Index: f.Index() + 1, Type: raft.LogCommand, Data: b}).(*fsm.Result).Err
	}
	if err := apply(&fsm.ClusterInit{
		Cluster: fsm.Cluster{ID: "c1", Settings: fsm.Settings{CertExpiry: 2160 * time.Hour, KeyRotation: 12 * time.Hour}, WorkerToken: "w", ManagerToken: "m"},
		First:   fsm.Node{ID: "n1", Role: ca.RoleManager},
	}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	FillOwnAddr(ctx, "n1", "10.0.0.1:4242", f, func(_ context.Context, c fsm.Command) error {
		calls++
		if calls == 1 {
			return errors.New("no leader yet")
		}
		return apply(c)
	})
	f.Read(func(s *fsm.State, _ uint64) {
		if got := s.Nodes["n1"].Addr; got != "10.0.0.1:4242" {
			t.Errorf("address = %q after FillOwnAddr; want 10.0.0.1:4242", got)
		}
	})
	if calls != 2 {
		t.Errorf("apply called %d times; want 2 (a failure, then the write)", calls)
	}
	FillOwnAddr(ctx, "n1", "10.9.9.9:4242", f, func(context.Context, fsm.Command) error {
		t.Error("apply called for a record that has an address")
		return nil
	})
}
