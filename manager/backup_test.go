package manager

import (
	"bytes"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/backup"
	"github.com/holdfast/holdfast/datadir"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/raftlog"
	"go.etcd.io/bbolt"
)

func init() {
	// Argon2id at its cheapest keeps these tests fast; the format and
	// the restore path are the same at any cost.
	backupArgon2 = backup.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
}

const (
	backupCanary     = "CANARY-backup-secret-9b1e42"
	backupPassphrase = "a passphrase long enough"
)

// saveBackup asks tn's control API for a backup and writes it to a file.
func saveBackup(t *testing.T, tn *testNode, passphrase string) string {
	t.Helper()
	var buf bytes.Buffer
	var announced int64
	n, err := tn.client.SaveSnapshot(ctxT(t), api.SnapshotRequest{Passphrase: passphrase}, &buf, func(s int64) { announced = s })
	if err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	if n != announced || n != int64(buf.Len()) {
		t.Errorf("got %d bytes; the daemon announced %d", n, announced)
	}
	path := filepath.Join(t.TempDir(), "backup.hfb")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// backupCanaries are the cluster's secrets as a backup must never show
// them: the secret's data, the CA key and the join tokens.
func backupCanaries(t *testing.T, tn *testNode) []canary {
	t.Helper()
	cs := []canary{{"secret data", []byte(backupCanary)}}
	tn.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) {
		blk, _ := pem.Decode(s.Cluster.RootKeyPEM)
		cs = append(cs, canary{"CA key PEM", s.Cluster.RootKeyPEM}, canary{"CA key DER", blk.Bytes[8:40]},
			canary{"worker token", []byte(s.Cluster.WorkerToken[len(s.Cluster.WorkerToken)-20:])},
			canary{"manager token", []byte(s.Cluster.ManagerToken[len(s.Cluster.ManagerToken)-20:])})
	})
	return cs
}

// startRestored runs a node on a restored data dir.
func startRestored(t *testing.T, dir string) *testNode {
	t.Helper()
	tn := newTestNode(t, "restored")
	tn.stop()
	tn.cfg.DataDir = dir
	tn.dir = dir
	tn.start()
	return tn
}

func TestBackupSaveWipeRestore(t *testing.T) {
	c := newCluster(t, 1, 0)
	m := c.managers[0]
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "db", Data: []byte(backupCanary), Labels: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.Update(ctxT(t), api.UpdateRequest{KeyRotation: new("1h")}); err != nil {
		t.Fatal(err)
	}

	// Autolock is off: a backup needs a passphrase, and a good one.
	var buf bytes.Buffer
	if _, err := m.client.SaveSnapshot(ctxT(t), api.SnapshotRequest{}, &buf, nil); apiStatus(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "--passphrase-file") {
		t.Errorf("backup without a passphrase, autolock off: got %v; want 400 asking for --passphrase-file", err)
	}
	if _, err := m.client.SaveSnapshot(ctxT(t), api.SnapshotRequest{Passphrase: "short"}, &buf, nil); apiStatus(err) != http.StatusBadRequest {
		t.Errorf("backup with a short passphrase: got %v; want 400", err)
	}
	path := saveBackup(t, m, backupPassphrase)
	if hits := scanFiles(t, []string{filepath.Dir(path)}, needlesOf(backupCanaries(t, m))); len(hits) > 0 {
		t.Fatalf("the backup holds plaintext: %+v", hits)
	}
	clusterID := c.init.ClusterID

	// Wipe everything.
	for _, tn := range c.managers {
		tn.stop()
		if err := os.RemoveAll(tn.dir); err != nil {
			t.Fatal(err)
		}
	}

	// A wrong passphrase and a flipped byte are refused, and the target
	// stays untouched.
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := datadir.RestoreBackup(ctxT(t), datadir.RestoreConfig{DataDir: target, Backup: path, Passphrase: []byte("not the passphrase at all")}); !errors.Is(err, datadir.ErrWrongPassphrase) {
		t.Errorf("wrong passphrase: got %v; want datadir.ErrWrongPassphrase", err)
	}
	b, _ := os.ReadFile(path)
	bad := filepath.Join(t.TempDir(), "bad.hfb")
	b[len(b)/2] ^= 0x40
	os.WriteFile(bad, b, 0o600)
	if _, err := datadir.RestoreBackup(ctxT(t), datadir.RestoreConfig{DataDir: target, Backup: bad, Passphrase: []byte(backupPassphrase)}); !errors.Is(err, backup.ErrTampered) {
		t.Errorf("flipped byte: got %v; want ErrTampered", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore left %s behind (stat: %v)", target, err)
	}
	occupied := t.TempDir()
	os.WriteFile(filepath.Join(occupied, "x"), nil, 0o600)
	if _, err := datadir.RestoreBackup(ctxT(t), datadir.RestoreConfig{DataDir: occupied, Backup: path, Passphrase: []byte(backupPassphrase)}); !errors.Is(err, datadir.ErrTargetNotEmpty) {
		t.Errorf("non-empty target: got %v; want datadir.ErrTargetNotEmpty", err)
	}

	var reports int
	res, err := datadir.RestoreBackup(ctxT(t), datadir.RestoreConfig{DataDir: target, Backup: path, Passphrase: []byte(backupPassphrase), Progress: func(done, total int64) { reports++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.ClusterID != clusterID || res.Secrets != 1 || reports == 0 {
		t.Errorf("restore = %+v after %d progress reports; want cluster %s with 1 secret", res, reports, clusterID)
	}

	if hits := scanFiles(t, []string{target}, needlesOf([]canary{{"secret data", []byte(backupCanary)}})); len(hits) > 0 {
		t.Fatalf("the restored data dir holds the secret in the clear: %+v", hits)
	}
	r := startRestored(t, target)
	eventually(t, 15*time.Second, "the restored node leads", func() bool { return r.status().IsLeader })
	st := r.status()
	if st.ClusterID != clusterID || st.NodeID != res.NodeID || len(st.Managers) != 1 || st.Managers[0].Addr != st.Addr {
		t.Errorf("restored status = %+v; want node %s alone in cluster %s at its own address", st, res.NodeID, clusterID)
	}
	if _, err := os.Stat(filepath.Join(target, "raft", datadir.RestoreMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the restore marker is still there after the first start: %v", err)
	}
	secs, err := r.client.Secrets(ctxT(t))
	if err != nil || len(secs) != 1 || secs[0].Name != "db" || secs[0].Labels["env"] != "prod" {
		t.Errorf("restored secrets = %+v, %v; want db with env=prod", secs, err)
	}
	r.node.current().rn().fsm.Read(func(s *fsm.State, _ uint64) {
		if s.Cluster.Settings.KeyRotation != time.Hour {
			t.Errorf("restored key rotation = %s; want 1h", s.Cluster.Settings.KeyRotation)
		}
		if sec, ok := s.Secrets.Get("db"); !ok || string(sec.Data) != backupCanary {
			t.Errorf("restored secret data is not what was stored")
		}
	})
	eventually(t, 10*time.Second, "the restored node's address recorded", func() bool {
		n, err := r.client.Node(ctxT(t), res.NodeID)
		return err == nil && n.Addr == st.Addr
	})

	// Another manager can join the restored cluster with the old token.
	c2 := &testCluster{t: t, init: &api.InitResponse{Addr: st.Addr}}
	j := c2.join("m-new", c.init.ManagerToken)
	eventually(t, 15*time.Second, "two voters", func() bool { return len(r.status().Managers) == 2 && j.status().State == api.StateReady })
	if secs, err := j.client.Secrets(ctxT(t)); err != nil || len(secs) != 1 {
		t.Errorf("secrets on the joined manager = %+v, %v", secs, err)
	}
	// The restored node survives a restart without recovering again.
	r.stop()
	r.start()
	eventually(t, 15*time.Second, "restarted restored node ready", func() bool {
		s := r.status()
		return s.State == api.StateReady && len(s.Managers) == 2
	})
}

func TestBackupAutolock(t *testing.T) {
	c, key := newLockedCluster(t, 1)
	m := c.managers[0]
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "db", Data: []byte(backupCanary)}); err != nil {
		t.Fatal(err)
	}
	path := saveBackup(t, m, "")
	if hits := scanFiles(t, []string{filepath.Dir(path)}, needlesOf(append(backupCanaries(t, m), canary{"unlock key", []byte(key)}))); len(hits) > 0 {
		t.Fatalf("the backup holds plaintext: %+v", hits)
	}
	h, err := datadir.ReadBackupHeader(path)
	if err != nil || h.KDF != backup.KDFUnlockKey || !h.Meta.Autolock {
		t.Fatalf("header = %+v, %v; want one keyed from the unlock key", h, err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	other := newLockedKey(t)
	if _, err := datadir.RestoreBackup(ctxT(t), datadir.RestoreConfig{DataDir: target, Backup: path, UnlockKey: other}); !errors.Is(err, datadir.ErrWrongBackupKey) || !strings.Contains(err.Error(), "invalid unlock key") {
		t.Errorf("wrong unlock key: got %v; want invalid unlock key", err)
	}
	if _, err := datadir.RestoreBackup(ctxT(t), datadir.RestoreConfig{DataDir: target, Backup: path, UnlockKey: key}); err != nil {
		t.Fatal(err)
	}
	r := startRestored(t, target)
	if st := r.status(); st.State != api.StateLocked {
		t.Fatalf("restored autolocked node: state %s; want locked", st.State)
	}
	var buf bytes.Buffer
	if _, err := r.client.SaveSnapshot(ctxT(t), api.SnapshotRequest{}, &buf, nil); apiStatus(err) != http.StatusLocked || buf.Len() != 0 {
		t.Errorf("backup from a locked node: got %v and %d bytes; want 423 and nothing", err, buf.Len())
	}
	if _, err := r.client.Unlock(ctxT(t), api.UnlockRequest{Key: key}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the restored node leads", func() bool { return r.status().IsLeader })
	if secs, err := r.client.Secrets(ctxT(t)); err != nil || len(secs) != 1 {
		t.Errorf("restored secrets = %+v, %v", secs, err)
	}
}

// newLockedKey is an unlock key of no cluster.
func newLockedKey(t *testing.T) string {
	t.Helper()
	return autolock.NewKey().String()
}

func TestRafttoolOffline(t *testing.T) {
	c, key := newLockedCluster(t, 1)
	m := c.managers[0]
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "db", Data: []byte(backupCanary)}); err != nil {
		t.Fatal(err)
	}
	forceSnapshot(t, m)
	if _, err := datadir.OpenOffline(m.dir, keyFn(key)); !errors.Is(err, datadir.ErrNodeRunning) {
		t.Errorf("a running node's dir: got %v; want datadir.ErrNodeRunning", err)
	}
	m.stop()
	if _, err := datadir.OpenOffline(m.dir, keyFn(newLockedKey(t))); err == nil || !strings.Contains(err.Error(), "invalid unlock key") {
		t.Errorf("wrong key: got %v; want invalid unlock key", err)
	}
	if _, err := datadir.OpenOffline(m.dir, keyFn("")); err == nil || !strings.Contains(err.Error(), "--key-file") {
		t.Errorf("no key: got %v; want a hint about --key-file", err)
	}
	o, err := datadir.OpenOffline(m.dir, keyFn(key))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var types []string
	if err := o.Entries(func(l *raft.Log) error {
		if l.Type == raft.LogCommand {
			name, _, err := fsm.Describe(l.Data)
			if err != nil {
				return err
			}
			types = append(types, name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(types, " "), "secret.create") {
		t.Errorf("log commands = %v; want a secret.create", types)
	}
	snaps := 0
	if err := o.Snapshots(func(meta *raft.SnapshotMeta, data []byte) error {
		snaps++
		_, _, err := fsm.DecodeSnapshot(data)
		return err
	}); err != nil || snaps == 0 {
		t.Errorf("snapshots: %d, %v; want at least one", snaps, err)
	}
	o.Close()

	// The log's last two entries deleted with bbolt (issue 16's
	// reproduction): the tool reports it rather than print a short log.
	dbPath := filepath.Join(m.dir, "raft", raftlog.DBFile)
	db, err := bbolt.Open(dbPath, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte("logs")).Cursor()
		for range 2 {
			if k, _ := c.Last(); k != nil {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := datadir.OpenOffline(m.dir, keyFn(key)); !errors.Is(err, raftlog.ErrRolledBack) || !strings.Contains(err.Error(), "wipe it and rejoin") {
		t.Errorf("a log with its tail deleted: got %v; want ErrRolledBack saying to wipe and rejoin", err)
	}
}

func keyFn(k string) func() (string, error) { return func() (string, error) { return k, nil } }
