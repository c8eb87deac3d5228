package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/internal/failpoint"
	"github.com/holdfast/holdfast/keyfiles"
)

// failpointBinary is holdfast built with -tags failpoints, once.
var failpointBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "holdfast-fp")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "holdfast")
	args := []string{"build", "-tags", "failpoints", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../cmd/holdfast")...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build with -tags failpoints: %v: %s", err, out)
	}
	return bin, nil
})

// crashRig is one autolocked cluster of three managers whose third
// manager, the victim, is crashed at failpoints again and again.
type crashRig struct {
	t       *testing.T
	c       *cluster
	victim  *daemon
	id      string   // the victim's node ID
	secrets string   // the victim's secrets dir
	keys    []string // every unlock key issued, oldest first
	acked   map[string][]byte
	n       int
}

func (r *crashRig) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	r.t.Cleanup(cancel)
	return ctx
}

// other is a running manager other than the victim.
func (r *crashRig) other() *daemon { return r.c.daemons[0] }

// writeSecrets makes n acknowledged writes (secrets, granted to grant if
// set) through another manager and remembers them.
func (r *crashRig) writeSecrets(n int, grant string) {
	for range n {
		r.n++
		name := fmt.Sprintf("s%04d", r.n)
		data := bytes.Repeat([]byte{byte(r.n)}, 100+r.n%50)
		req := api.SecretCreateRequest{Name: name, Data: data}
		if grant != "" {
			req.Grants = []string{grant}
		}
		if _, err := r.other().client.CreateSecret(r.ctx(), req); err != nil {
			r.t.Fatalf("write %s: %v", name, err)
		}
		r.acked[name] = data
	}
}

// writeFollowed makes n acknowledged writes in small steps, each followed
// until the victim has applied it (or died), so that the victim never
// lags far enough behind for the leader to send it a snapshot.
func (r *crashRig) writeFollowed(n int) {
	r.t.Helper()
	for done := 0; done < n; done += 4 {
		r.writeSecrets(min(4, n-done), "")
		st, err := r.other().status()
		if err != nil {
			r.t.Fatal(err)
		}
		target := st.Raft.CommitIndex
		waitFor(r.t, 30*time.Second, "the victim applying the writes", func() bool {
			select {
			case err := <-r.victim.exited:
				r.victim.exited <- err
				return true
			default:
			}
			vs, err := r.victim.status()
			return err == nil && vs.Raft.AppliedIndex >= target
		})
	}
}

// unlock tries the keys newest first (with oldFirst, the previous key
// first), and returns the index of the one that opened the victim.
func (r *crashRig) unlock(oldFirst bool) int {
	r.t.Helper()
	order := make([]int, 0, len(r.keys))
	for i := len(r.keys) - 1; i >= 0; i-- {
		order = append(order, i)
	}
	if oldFirst && len(order) > 1 {
		order[0], order[1] = order[1], order[0]
	}
	for _, i := range order {
		if _, err := r.victim.client.Unlock(r.ctx(), api.UnlockRequest{Key: r.keys[i]}); err == nil {
			return i
		} else if !strings.Contains(err.Error(), "invalid unlock key") {
			r.t.Fatalf("unlock %s: %v", r.victim.name, err)
		}
	}
	r.t.Fatalf("no unlock key opens %s: it is locked out", r.victim.name)
	return -1
}

// arm restarts the victim with point armed (after pre, run while it is
// down) and unlocks it; it may die at the point before this returns.
func (r *crashRig) arm(point string, nth int, pre func()) {
	r.t.Helper()
	r.victim.kill()
	if pre != nil {
		pre()
	}
	r.victim.env = append(slices.Clip(crashTune), fmt.Sprintf("%s=%s:%d", "HOLDFAST_FAILPOINT", point, nth))
	r.victim.start()
	_, _ = r.victim.client.Unlock(r.ctx(), api.UnlockRequest{Key: r.keys[len(r.keys)-1]})
}

// died waits until the victim's process is gone, killed by point.
func (r *crashRig) died(point string) {
	r.t.Helper()
	select {
	case err := <-r.victim.exited:
		r.victim.exited <- err
	case <-time.After(90 * time.Second):
		r.t.Fatalf("%s did not reach %s", r.victim.name, point)
	}
	r.victim.kill() // reaps it
	log, _ := os.ReadFile(r.victim.log)
	if !bytes.Contains(log, []byte("failpoint "+point+": killing the process")) {
		r.t.Fatalf("%s died, but not at %s", r.victim.name, point)
	}
}

// installsSent counts the snapshots the other managers' logs say they
// started to send to the victim.
func (r *crashRig) installsSent() int {
	n := 0
	for _, d := range r.c.daemons {
		if d == r.victim {
			continue
		}
		b, _ := os.ReadFile(d.log)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "installing snapshot on") && strings.Contains(line, r.id) {
				n++
			}
		}
	}
	return n
}

// recover starts the victim unarmed, checks its files before unlocking
// (no journal left; the DEK file and the TLS key under one KEK; every
// delivered secret whole), unlocks it, and waits until it has converged:
// ready, under the newest key, every acknowledged write readable through
// it. It returns the index of the key that unlocked it.
func (r *crashRig) recover(oldFirst bool) int {
	r.t.Helper()
	r.victim.env = crashTune
	r.victim.start()
	if _, err := os.Stat(filepath.Join(r.victim.dir, keyfiles.JournalFile)); err == nil {
		r.t.Errorf("a journal is left after the restart")
	}
	ids := map[string]bool{}
	for _, f := range []string{keyfiles.DEKFile, keyfiles.NodeKeyFile} {
		b, err := os.ReadFile(filepath.Join(r.victim.dir, f))
		if err != nil {
			r.t.Fatal(err)
		}
		id, ok := autolock.KEKID(b)
		if !ok {
			r.t.Fatalf("%s is not wrapped after the crash", f)
		}
		ids[id.String()] = true
	}
	if len(ids) != 1 {
		r.t.Errorf("the DEK file and the TLS key are wrapped under different keys: %v", ids)
	}
	r.checkSecretFiles()
	used := r.unlock(oldFirst)
	newest := mustKEKID(r.t, r.keys[len(r.keys)-1])
	waitFor(r.t, 60*time.Second, r.victim.name+" converged", func() bool {
		st, err := r.victim.status()
		if err != nil || st.State != api.StateReady || st.Leader.NodeID == "" {
			return false
		}
		for _, f := range []string{keyfiles.DEKFile, keyfiles.NodeKeyFile} {
			b, _ := os.ReadFile(filepath.Join(r.victim.dir, f))
			if id, ok := autolock.KEKID(b); !ok || id.String() != newest {
				return false
			}
		}
		list, err := r.victim.client.Secrets(r.ctx())
		if err != nil {
			return false
		}
		have := map[string]bool{}
		for _, s := range list {
			have[s.Name] = true
		}
		for name := range r.acked {
			if !have[name] {
				return false
			}
		}
		return true
	})
	return used
}

// checkSecretFiles checks that every secret file in the victim's secrets
// dir is whole: a secret's data, never part of it.
func (r *crashRig) checkSecretFiles() {
	r.t.Helper()
	ents, _ := os.ReadDir(r.secrets)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // an interrupted write's temporary file
		}
		b, err := os.ReadFile(filepath.Join(r.secrets, e.Name()))
		if err != nil {
			r.t.Fatal(err)
		}
		if want, ok := r.acked[e.Name()]; !ok || !bytes.Equal(b, want) {
			r.t.Errorf("secret file %s holds %d bytes that are not the secret's", e.Name(), len(b))
		}
	}
}

func mustKEKID(t *testing.T, key string) string {
	t.Helper()
	k, err := autolock.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return k.KEK().ID().String()
}

// crashTune makes raft snapshot often (a failpoints build reads it).
var crashTune = []string{"HOLDFAST_TEST_SNAPSHOT_THRESHOLD=48", "HOLDFAST_TEST_TRAILING_LOGS=16", "HOLDFAST_TEST_SNAPSHOT_INTERVAL=100ms"}

// TestCrashPoints kills a manager of a real, autolocked cluster at every
// failpoint (internal/failpoint.All), restarts and unlocks it, and checks
// that it comes back, that nothing acknowledged is lost, that its key
// files and delivered secrets are old or new and never mixed, and, for
// unlock-key rotation, that the documented key opens it: the new key
// after a crash at any point, and before the journal's rename the old key
// too.
func TestCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a failpoints binary and crashes a cluster member at each point")
	}
	bin, err := failpointBinary()
	if err != nil {
		t.Fatal(err)
	}
	secretsDirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	c := &cluster{tb: t}
	for i := range 3 {
		c.daemons = append(c.daemons, newDaemon(t, fmt.Sprintf("d%d", i), func(d *daemon) {
			d.bin, d.env, d.args = bin, crashTune, []string{"--secrets-dir", secretsDirs[i]}
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	init, err := c.daemons[0].client.Init(ctx, api.InitRequest{Autolock: true})
	if err != nil {
		t.Fatal(err)
	}
	c.init = init
	for _, d := range c.daemons[1:] {
		if out, errOut, code := d.cli("", "join", "--token", init.ManagerToken, init.Addr); code != 0 {
			t.Fatalf("join %s: exit %d: %s%s", d.name, code, out, errOut)
		}
	}
	c.waitHealthy()
	r := &crashRig{t: t, c: c, victim: c.daemons[2], secrets: secretsDirs[2], keys: []string{init.UnlockKey}, acked: map[string][]byte{}}
	st, err := r.victim.status()
	if err != nil {
		t.Fatal(err)
	}
	r.id = st.NodeID
	r.writeSecrets(3, r.id)

	rotateUnlockKey := func() {
		rot, err := r.other().client.RotateUnlockKey(r.ctx(), api.RotateUnlockKeyRequest{})
		if err != nil {
			t.Fatalf("rotate the unlock key: %v", err)
		}
		r.keys = append(r.keys, rot.UnlockKey)
	}
	var caDone chan error
	rotateCA := func() {
		caDone = make(chan error, 1)
		go func() {
			out, errOut, code := r.other().cli("", "ca", "--rotate", "-q")
			if code != 0 {
				caDone <- fmt.Errorf("ca --rotate: exit %d: %s%s", code, out, errOut)
				return
			}
			caDone <- nil
		}()
	}
	type scenario struct {
		name    string
		point   string
		nth     int
		pre     func() // while the victim is down, before it restarts armed
		trigger func()
		// newKey: after a crash at this point of an unlock-key rotation,
		// the key that opens the node is the new one (else the old one);
		// oldFirst tries the old key first.
		newKey, oldFirst bool
		// install: the victim dies installing a snapshot the leader sends
		// (else: a snapshot it takes itself, if a snapshot point).
		install bool
	}
	scenarios := []scenario{
		// Before the commit both keys open the node: the old one the files,
		// the new one the journal that did not commit (which it commits).
		{name: "unlock-key rotation, new key", point: failpoint.KeyfilesRekeyPrepared, trigger: rotateUnlockKey, newKey: true},
		{name: "unlock-key rotation, old key", point: failpoint.KeyfilesRekeyPrepared, trigger: rotateUnlockKey, oldFirst: true},
		{name: "unlock-key rotation", point: failpoint.KeyfilesRekeyCommitted, trigger: rotateUnlockKey, newKey: true},
		{name: "unlock-key rotation", point: failpoint.KeyfilesRekeyHalfApplied, trigger: rotateUnlockKey, newKey: true},
		{name: "unlock-key rotation", point: failpoint.KeyfilesRekeyApplied, trigger: rotateUnlockKey, newKey: true},
		{name: "DEK rotation, first key file write", point: failpoint.KeyfilesDEKPrepared, nth: 1, trigger: rotateUnlockKey, newKey: true},
		{name: "DEK rotation, last key file write", point: failpoint.KeyfilesDEKApplied, nth: 2, trigger: rotateUnlockKey, newKey: true},
		{name: "DEK rotation", point: failpoint.DEKRotateResealed, trigger: rotateUnlockKey, newKey: true},
		{name: "DEK rotation", point: failpoint.DEKRotateCompacted, trigger: rotateUnlockKey, newKey: true},
		// The first certificate write of a CA rotation is the renewal onto
		// the new root (renewCert, as a periodic renewal writes).
		{name: "CA rotation, renewal", point: failpoint.KeyfilesCertsPrepared, trigger: rotateCA},
		{name: "CA rotation, renewal", point: failpoint.KeyfilesCertsCommitted, trigger: rotateCA},
		{name: "CA rotation, renewal", point: failpoint.KeyfilesCertsHalfApplied, trigger: rotateCA},
		{name: "CA rotation, renewal", point: failpoint.KeyfilesCertsApplied, trigger: rotateCA},
		// The second certificate write of a CA rotation: new roots to trust.
		{name: "CA rotation, trust refresh", point: failpoint.KeyfilesCertsCommitted, nth: 2, trigger: rotateCA},
		{name: "CA rotation, trust refresh", point: failpoint.KeyfilesCertsHalfApplied, nth: 2, trigger: rotateCA},
		{name: "snapshot persist", point: failpoint.SnapshotSynced, trigger: func() { r.writeFollowed(60) }},
		{name: "snapshot persist", point: failpoint.SnapshotPublished, trigger: func() { r.writeFollowed(60) }},
		{name: "snapshot install", point: failpoint.SnapshotSynced, pre: func() { r.writeSecrets(80, "") }, install: true},
		{name: "snapshot install", point: failpoint.SnapshotPublished, pre: func() { r.writeSecrets(80, "") }, install: true},
		{name: "secret delivery", point: failpoint.SecretSynced, trigger: func() { r.writeSecrets(1, r.id) }},
		{name: "secret delivery", point: failpoint.SecretRenamed, trigger: func() { r.writeSecrets(1, r.id) }},
		// Last: by now the victim holds snapshots for the rotation to re-seal.
		{name: "DEK rotation", point: failpoint.DEKRotateLogResealed, trigger: rotateUnlockKey, newKey: true},
		{name: "DEK rotation", point: failpoint.SnapshotResealed, trigger: rotateUnlockKey, newKey: true},
	}
	covered := map[string]bool{}
	for _, sc := range scenarios {
		covered[sc.point] = true
	}
	for _, p := range failpoint.All {
		if !covered[p] {
			t.Errorf("failpoint %s has no crash scenario", p)
		}
	}
	for _, sc := range scenarios {
		t.Run(sc.name+"/"+sc.point, func(t *testing.T) {
			r.t, r.victim.tb = t, t
			defer func() { r.victim.tb = r.c.tb }()
			nth := max(sc.nth, 1)
			// A victim that lags behind a busy machine may be sent a
			// snapshot where the scenario wants it to take its own: the
			// crash then happened in the other path, so try again.
			for attempt := 1; ; attempt++ {
				before := len(r.keys)
				installs := r.installsSent()
				r.arm(sc.point, nth, sc.pre)
				if sc.trigger != nil {
					sc.trigger()
				}
				r.died(sc.point)
				sent := r.installsSent() > installs
				used := r.recover(sc.oldFirst)
				if len(r.keys) > before {
					want := len(r.keys) - 2 // the old key
					if sc.newKey {
						want = len(r.keys) - 1
					}
					if used != want {
						t.Errorf("after a crash at %s, key %d of %d unlocked the node; want key %d (%s)", sc.point, used+1, len(r.keys), want+1, map[bool]string{true: "the new key", false: "the old key"}[sc.newKey])
					}
				}
				if !strings.HasPrefix(sc.point, "snapshot/") || sent == sc.install {
					break
				}
				if attempt == 5 {
					t.Fatalf("a snapshot was sent to the victim: %v; want %v (five times the crash was not in the path this scenario names)", sent, sc.install)
				}
				t.Logf("attempt %d: the crash was not in the path this scenario names (snapshot sent: %v); again", attempt, sent)
			}
			if caDone != nil {
				if err := <-caDone; err != nil {
					t.Fatal(err)
				}
				caDone = nil
			}
			r.checkSecretFiles()
		})
		if t.Failed() {
			break
		}
	}
}
