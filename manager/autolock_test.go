package manager

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/raftlog"

	"github.com/hashicorp/raft"
)

// newLockedCluster starts n managers with autolock on and returns the
// cluster and the unlock key.
func newLockedCluster(t *testing.T, n int) (*testCluster, string) {
	t.Helper()
	c := &testCluster{t: t}
	first := newTestNode(t, "m0")
	init, err := first.client.Init(ctxT(t), api.InitRequest{Autolock: true})
	if err != nil {
		t.Fatalf("init --autolock: %v", err)
	}
	if _, err := autolock.ParseKey(init.UnlockKey); err != nil {
		t.Fatalf("init printed unlock key %q: %v", init.UnlockKey, err)
	}
	c.init = init
	c.managers = append(c.managers, first)
	for i := 1; i < n; i++ {
		c.managers = append(c.managers, c.join("m"+string(rune('0'+i)), init.ManagerToken))
	}
	// Joined managers wrap their keys once they learn the cluster's key.
	for _, m := range c.managers {
		eventually(t, 15*time.Second, m.name+" keys wrapped", func() bool { return wrappedOnDisk(m.node) && m.node.keyFiles.WrappedUnder(mustKEK(t, init.UnlockKey)) })
	}
	return c, init.UnlockKey
}

func mustKey(t *testing.T, s string) autolock.Key {
	t.Helper()
	k, err := autolock.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLockedRestartAndLiveUnlock(t *testing.T) {
	c, key := newLockedCluster(t, 3)
	id, err := c.managers[1].client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "before", Data: []byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.managers {
		m.stop()
	}
	for _, m := range c.managers {
		m.start()
		st := m.status()
		if st.State != api.StateLocked || !st.Autolock || st.NodeID == "" {
			t.Fatalf("%s after restart: got %+v; want locked", m.name, st)
		}
		_, err := m.client.Secrets(ctxT(t))
		if apiStatus(err) != http.StatusLocked || !errors.Is(err, api.ErrLocked) || !strings.Contains(err.Error(), "this node is locked; run 'holdfast unlock'") {
			t.Errorf("%s locked: got %v; want 423", m.name, err)
		}
		if m.node.current() != nil {
			t.Errorf("%s runs its port while locked", m.name)
		}
	}
	// A wrong key and a mistyped one leave it locked, with clear errors.
	wrong := autolock.NewKey().String()
	mistyped := key[:len(key)-1] + string("abcdefghijklmnopqrstuvwxyz234567"[(strings.IndexByte("abcdefghijklmnopqrstuvwxyz234567", key[len(key)-1])+1)%32])
	for _, k := range []string{wrong, mistyped, "nonsense"} {
		if _, err := c.managers[0].client.Unlock(ctxT(t), api.UnlockRequest{Key: k}); err == nil || !strings.Contains(err.Error(), "invalid unlock key") {
			t.Errorf("unlock with a bad key: got %v; want invalid unlock key", err)
		}
		if st := c.managers[0].status(); st.State != api.StateLocked {
			t.Errorf("after a bad key: state %s; want locked", st.State)
		}
	}
	for _, m := range c.managers {
		if _, err := m.client.Unlock(ctxT(t), api.UnlockRequest{Key: key + "\n"}); err != nil {
			t.Fatalf("unlock %s: %v", m.name, err)
		}
	}
	// Unlocked, each catches up with the leader (once a majority is
	// unlocked there is one), then is ready.
	for _, m := range c.managers {
		eventually(t, 15*time.Second, m.name+" ready after unlock", func() bool { return m.status().State == api.StateReady })
	}
	got, err := c.managers[2].client.Secret(ctxT(t), "before")
	if err != nil || got.ID != id.ID {
		t.Errorf("secret written before the restart: got %+v, %v", got, err)
	}
}

// The unlock key is rotated while a manager is down; that manager unlocks
// with the key it last knew, then ends up wrapped under the new one.
func TestUnlockKeyRotationWhileDown(t *testing.T) {
	c, oldKey := newLockedCluster(t, 3)
	down := c.managers[2]
	down.stop()
	rot, err := c.managers[0].client.RotateUnlockKey(ctxT(t), api.RotateUnlockKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rot.UnlockKey == oldKey {
		t.Fatal("rotation returned the old key")
	}
	down.start()
	if _, err := down.client.Unlock(ctxT(t), api.UnlockRequest{Key: rot.UnlockKey}); err == nil {
		t.Fatal("the new key opened a node that was down during the rotation")
	}
	if _, err := down.client.Unlock(ctxT(t), api.UnlockRequest{Key: oldKey}); err != nil {
		t.Fatalf("unlock with the key it last knew: %v", err)
	}
	newKEK := mustKey(t, rot.UnlockKey).KEK()
	eventually(t, 15*time.Second, "re-wrapped under the new key", func() bool {
		b, err := os.ReadFile(down.node.dir.path(keyfiles.DEKFile))
		if err != nil {
			return false
		}
		id, ok := autolock.KEKID(b)
		return ok && id == newKEK.ID()
	})
	// Restart: only the new key opens it now.
	down.stop()
	down.start()
	if _, err := down.client.Unlock(ctxT(t), api.UnlockRequest{Key: oldKey}); err == nil {
		t.Error("the old key still opens the node")
	}
	if _, err := down.client.Unlock(ctxT(t), api.UnlockRequest{Key: rot.UnlockKey}); err != nil {
		t.Errorf("unlock with the new key: %v", err)
	}
}

// Autolock off stores the DEK unwrapped; turning it on again rotates the
// DEK, so the one that was ever stored unwrapped opens nothing afterwards.
func TestAutolockOffThenOnRetiresUnwrappedDEK(t *testing.T) {
	c, _ := newLockedCluster(t, 1)
	m := c.managers[0]
	if _, err := m.client.Update(ctxT(t), api.UpdateRequest{Autolock: new(false)}); err != nil {
		t.Fatal(err)
	}
	var plain raftlog.KeyFile
	eventually(t, 15*time.Second, "the DEK stored unwrapped", func() bool {
		b, err := os.ReadFile(m.node.dir.path(keyfiles.DEKFile))
		if err != nil || autolock.IsWrapped(b) {
			return false
		}
		plain, err = m.node.keyFiles.LoadDEKs(m.status().NodeID)
		return err == nil
	})
	if _, err := m.client.RotateJoinToken(ctxT(t), "worker"); err != nil {
		t.Fatal(err)
	}
	up, err := m.client.Update(ctxT(t), api.UpdateRequest{Autolock: new(true)})
	if err != nil || up.UnlockKey == "" {
		t.Fatalf("autolock on again: %+v, %v", up, err)
	}
	kek := mustKey(t, up.UnlockKey).KEK()
	// Done when the key file, wrapped under the new KEK, holds only a DEK
	// other than the one that was stored unwrapped (the rotation is over).
	eventually(t, 15*time.Second, "wrapped again under the new key, with a new DEK", func() bool {
		b, err := os.ReadFile(m.node.dir.path(keyfiles.DEKFile))
		if err != nil || !m.node.keyFiles.WrappedUnder(kek) {
			return false
		}
		pt, err := autolock.Unwrap(kek, autolock.PurposeDEK, m.status().NodeID, b)
		if err != nil {
			return false
		}
		kf, err := raftlog.ParseKeyFile(pt)
		return err == nil && len(kf.Previous) == 0 && !kf.Current.Equal(plain.Current)
	})
	m.stop()
	old := plain.Current.ID()
	scanDir(t, m.dir, func(path string, b []byte) {
		if bytes.Contains(b, old[:]) {
			t.Errorf("%s still holds records sealed under the DEK that was stored unwrapped", path)
		}
	})
	store, err := raftlog.Open(filepath.Join(m.dir, "raft"), raftlog.Options{ClusterID: c.init.ClusterID, Keys: raftlog.NewKeyring(plain.Current)})
	if errors.Is(err, raftlog.ErrUnknownKey) {
		return // the retired DEK does not even open the sealed log state
	}
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	first, _ := store.FirstIndex()
	last, _ := store.LastIndex()
	for i := first; i <= last && i != 0; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err == nil {
			t.Errorf("the retired DEK opens entry %d", i)
		}
	}
}

// Neither the unlock key nor the KEK is in any file of any data dir.
func TestUnlockKeyNeverOnDisk(t *testing.T) {
	c, key := newLockedCluster(t, 3)
	rot, err := c.managers[1].client.RotateUnlockKey(ctxT(t), api.RotateUnlockKeyRequest{Shares: 5, Threshold: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Shares) != 5 {
		t.Fatalf("got %d shares; want 5", len(rot.Shares))
	}
	for _, m := range c.managers {
		eventually(t, 15*time.Second, "re-wrapped", func() bool {
			b, _ := os.ReadFile(m.node.dir.path(keyfiles.DEKFile))
			id, ok := autolock.KEKID(b)
			return ok && id == mustKey(t, rot.UnlockKey).KEK().ID()
		})
	}
	for _, m := range c.managers {
		m.stop()
	}
	var needles [][]byte
	for _, k := range []string{key, rot.UnlockKey} {
		needles = append(needles, []byte(k), []byte(k[len("HFKEY-1-"):]))
		kek := mustKey(t, k).KEK()
		needles = append(needles, kek.Bytes())
	}
	for _, m := range c.managers {
		scanDir(t, m.dir, func(path string, b []byte) {
			for _, nd := range needles {
				if bytes.Contains(b, nd) {
					t.Errorf("%s holds the unlock key or KEK", path)
				}
			}
		})
	}
	// m-of-n: three shares, one at a time, unlock a restarted node.
	m := c.managers[0]
	m.start()
	for i, sh := range rot.Shares[1:4] {
		resp, err := m.client.Unlock(ctxT(t), api.UnlockRequest{Key: sh})
		if err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
		if i < 2 && (resp.State != api.StateLocked || resp.Shares != i+1 || resp.SharesNeeded != 3) {
			t.Errorf("after share %d: got %+v; want locked, %d/3", i, resp, i+1)
		}
		if i == 2 && resp.State != api.StateReady {
			t.Errorf("after the third share: got %+v; want ready", resp)
		}
	}
}

// scanDir calls fn with every regular file's bytes under dir.
func scanDir(t *testing.T, dir string, fn func(path string, b []byte)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fn(path, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func mustKEK(t *testing.T, s string) seal.Key { return mustKey(t, s).KEK() }

var _ = context.Background

// wrappedOnDisk tells whether n's key files are wrapped (n starts locked).
func wrappedOnDisk(n *Node) bool {
	w, err := n.keyFiles.Wrapped()
	return err == nil && w
}

// A flipped byte in a wrapped key file is reported as damage to that
// file, not as a wrong unlock key (the previous release said "invalid
// unlock key" to the right key), and the node stays locked.
func TestDamagedKeyFileIsNamedAtUnlock(t *testing.T) {
	c, key := newLockedCluster(t, 1)
	m := c.managers[0]
	m.stop()
	for _, name := range []string{keyfiles.DEKFile, keyfiles.NodeKeyFile} {
		t.Run(name, func(t *testing.T) {
			p := m.node.dir.path(name)
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b := append([]byte(nil), orig...)
			b[len(b)-5] ^= 0x40 // in the ciphertext: the envelope still names the key
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := os.WriteFile(p, orig, 0o600); err != nil {
					t.Fatal(err)
				}
			}()
			m.start()
			defer m.stop()
			_, err = m.client.Unlock(ctxT(t), api.UnlockRequest{Key: key})
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "damaged") || strings.Contains(err.Error(), "invalid unlock key") {
				t.Fatalf("unlock with the right key and a damaged %s: %v; want an error naming the file as damaged", name, err)
			}
			if st := m.status(); st.State != api.StateLocked {
				t.Errorf("state %s; want locked", st.State)
			}
		})
	}
	m.start()
	if _, err := m.client.Unlock(ctxT(t), api.UnlockRequest{Key: key}); err != nil {
		t.Fatalf("unlock once the files are whole again: %v", err)
	}
}
