package manager

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/keyfiles"
)

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h: nothing, root
// included, may create, rename or remove entries of such a directory.
const fsImmutableFL = 0x10

// setImmutable sets or clears a directory's immutable flag; false if the
// file system or the process cannot.
func setImmutable(t *testing.T, dir string, on bool) bool {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return false
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags) == nil
}

// A crash during unlock-key rotation, after the DEK file was re-wrapped
// under the new key and before the TLS key was (here the TLS key's write
// fails, then the node dies), must leave a node one of the two keys
// unlocks: the new one, since the write had committed. The previous
// release left the DEK file under the new key and the TLS key under the
// old one, and neither key opened the node.
func TestCrashMidUnlockKeyRotationLeavesNodeUnlockable(t *testing.T) {
	c, oldKey := newLockedCluster(t, 1)
	m := c.managers[0]
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "before", Data: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	certs := m.node.dir.path("certs")
	if !setImmutable(t, certs, true) {
		t.Skip("cannot make a directory immutable here (needs root on ext4 or similar)")
	}
	t.Cleanup(func() { setImmutable(t, certs, false) })
	rot, err := m.client.RotateUnlockKey(ctxT(t), api.RotateUnlockKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	newKEK := mustKey(t, rot.UnlockKey).KEK()
	eventually(t, 15*time.Second, "the DEK file re-wrapped under the new key", func() bool {
		b, err := os.ReadFile(m.node.dir.path(keyfiles.DEKFile))
		id, ok := autolock.KEKID(b)
		return err == nil && ok && id == newKEK.ID()
	})
	m.halt() // the crash: the TLS key's write never happened
	if !setImmutable(t, certs, false) {
		t.Fatal("cannot clear the immutable flag")
	}
	m.start()
	if st := m.status(); st.State != api.StateLocked {
		t.Fatalf("after the crash: state %s; want locked", st.State)
	}
	_, newErr := m.client.Unlock(ctxT(t), api.UnlockRequest{Key: rot.UnlockKey})
	if newErr != nil {
		_, oldErr := m.client.Unlock(ctxT(t), api.UnlockRequest{Key: oldKey})
		t.Fatalf("after a crash past the commit point: the new key got %v (old key: %v); want the new key to unlock", newErr, oldErr)
	}
	eventually(t, 15*time.Second, "converged on the new key", func() bool { return m.node.keyFiles.WrappedUnder(newKEK) })
	if got, err := m.client.Secret(ctxT(t), "before"); err != nil || got.Name != "before" {
		t.Errorf("secret written before the crash: %+v, %v", got, err)
	}
}
