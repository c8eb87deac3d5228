package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// loadWrites creates writers×perWriter secrets named prefix-W-I through
// the daemons in turn, concurrently, and returns their names. A write
// answered 503 (no leader for a moment) is sent again; one that may have
// been applied before is then answered 409, which counts as done.
func loadWrites(tb testing.TB, daemons []*daemon, prefix string, writers, perWriter int) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var names []string
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			d := daemons[w%len(daemons)]
			for i := range perWriter {
				name := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				retried := false
				for {
					_, err := d.client.CreateSecret(ctx, api.SecretCreateRequest{Name: name, Data: []byte("v-" + name)})
					if err == nil || (retried && apiStatus(err) == http.StatusConflict) {
						break
					}
					if apiStatus(err) != http.StatusServiceUnavailable || ctx.Err() != nil {
						tb.Errorf("create %s through %s: %v", name, d.name, err)
						return
					}
					retried = true
				}
				mu.Lock()
				names = append(names, name)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	return names
}

// secretsOf lists the secrets d holds: a read through d is served from
// its own state once it has caught up with the leader.
func secretsOf(tb testing.TB, d *daemon) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := d.client.Secrets(ctx)
	if err != nil {
		tb.Fatalf("secret ls on %s: %v", d.name, err)
	}
	var out []string
	for _, s := range list {
		out = append(out, s.ID+" "+s.Name+" "+s.Digest)
	}
	slices.Sort(out)
	return out
}

// sameSecrets checks that every daemon holds the same secrets, and all of
// want.
func sameSecrets(tb testing.TB, daemons []*daemon, want []string) {
	tb.Helper()
	ref := secretsOf(tb, daemons[0])
	for _, d := range daemons[1:] {
		if got := secretsOf(tb, d); !slices.Equal(got, ref) {
			tb.Errorf("%s holds %d secrets, %s holds %d: the states differ", d.name, len(got), daemons[0].name, len(ref))
		}
	}
	names := map[string]bool{}
	for _, s := range ref {
		names[strings.Fields(s)[1]] = true
	}
	for _, n := range want {
		if !names[n] {
			tb.Errorf("acknowledged secret %s is missing", n)
		}
	}
	for _, d := range daemons {
		if st, err := d.status(); err != nil || st.State != api.StateReady {
			tb.Errorf("%s: %v, state %+v", d.name, err, st)
		}
	}
}

// clusterVersionIs waits until d reports cluster version cv.
func clusterVersionIs(tb testing.TB, d *daemon, cv int) {
	tb.Helper()
	waitFor(tb, 30*time.Second, fmt.Sprintf("cluster version %d on %s", cv, d.name), func() bool {
		st, err := d.status()
		return err == nil && st.ClusterVersion == cv
	})
}

// dumpCommands stops d cleanly and returns its raft log's command entries
// (rafttool dump), by index.
func dumpCommands(tb testing.TB, d *daemon) map[uint64]string {
	tb.Helper()
	if err := d.term(); err != nil {
		tb.Fatalf("stop %s: %v", d.name, err)
	}
	cmd := exec.Command(binary, "--data-dir", d.dir, "rafttool", "dump")
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("rafttool dump: %v", err)
	}
	cmds := map[uint64]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Kind    string `json:"kind"`
			Index   uint64 `json:"index"`
			Command string `json:"command"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			tb.Fatalf("rafttool dump line %q: %v", sc.Text(), err)
		}
		if line.Kind == "entry" && line.Command != "" {
			cmds[line.Index] = line.Command
		}
	}
	return cmds
}

// A cluster half way through an upgrade: d0 runs at level 1 (no batch
// entries, secret.create version 1 only), d1 and d2 at this build's
// level. Under load, and across a failover that puts a full-level manager
// in the lead, every manager holds the same state; once d0 runs this
// build's level too, the cluster version rises and the leader proposes
// batch entries.
func TestMixedLevelCluster(t *testing.T) {
	low := newDaemonOf(t, "d0", "", "HOLDFAST_TEST_LEVEL=1")
	c := &cluster{tb: t, daemons: []*daemon{low, newDaemon(t, "d1"), newDaemon(t, "d2")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	init, err := low.client.Init(ctx, api.InitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c.init = init
	for _, d := range c.daemons[1:] {
		if _, err := d.client.Join(ctx, api.JoinRequest{Token: init.ManagerToken, Addr: init.Addr}); err != nil {
			t.Fatalf("join %s: %v", d.name, err)
		}
	}
	c.waitHealthy()
	clusterVersionIs(t, low, fsm.Level1)

	written := loadWrites(t, c.daemons, "a", 16, 8)
	// Failover: the level 1 manager leads (it created the cluster); kill
	// it, so that a full-level one takes the lead, and write on.
	if l := c.leader(); l != low {
		t.Logf("%s leads, not d0, which created the cluster: killing d0 all the same", l.name)
	}
	low.kill()
	l := c.leader()
	clusterVersionIs(t, l, fsm.Level1)
	written = append(written, loadWrites(t, c.daemons[1:], "b", 16, 8)...)
	low.start()
	c.waitHealthy()
	written = append(written, loadWrites(t, c.daemons, "c", 16, 8)...)
	sameSecrets(t, c.daemons, written)

	// The upgrade: d0 restarted at this build's level.
	if err := low.term(); err != nil {
		t.Fatal(err)
	}
	low.env = nil
	low.start()
	c.waitHealthy()
	l = c.leader()
	clusterVersionIs(t, l, fsm.CurrentLevel)
	st, err := l.status()
	if err != nil {
		t.Fatal(err)
	}
	mark := st.Raft.LastIndex
	written = append(written, loadWrites(t, c.daemons, "d", 32, 8)...)
	sameSecrets(t, c.daemons, written)

	var f *daemon
	for _, d := range c.daemons {
		if d != l {
			f = d
			break
		}
	}
	cmds := dumpCommands(t, f)
	var before, after int
	for idx, name := range cmds {
		if name == "batch" {
			if idx <= mark {
				before++
			} else {
				after++
			}
		}
	}
	if before != 0 {
		t.Errorf("%d batch entries while d0 was at level 1", before)
	}
	if after == 0 {
		t.Error("no batch entry once every manager ran this build's level")
	}
	t.Logf("%d log commands; batch entries: %d before the upgrade, %d after", len(cmds), before, after)
}

// previousBuild builds the holdfast binary of commit rev (from before
// levels) out of the repository's history, or skips the test when the
// history or git is not there. It reads the history only (git archive):
// the repository is not changed.
func previousBuild(t *testing.T, rev string) string {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("skipping the previous build's run: no git on this machine")
	}
	if out, err := exec.Command(git, "-C", "..", "cat-file", "-e", rev+"^{commit}").CombinedOutput(); err != nil {
		t.Skipf("skipping the previous build's run: commit %s is not in this repository's history (%v: %s)", rev, err, out)
	}
	src := t.TempDir()
	archive := exec.Command(git, "-C", "..", "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", rev, err)
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("unpack %s: %v", rev, err)
	}
	bin := filepath.Join(t.TempDir(), "holdfast-"+rev)
	build := exec.Command("go", "build", "-o", bin, "./cmd/holdfast")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", rev, err, out)
	}
	return bin
}

// previousRev is the last commit before levels: its managers advertise
// nothing, know batch entries and secret.create version 2, and skip what
// they cannot apply.
const previousRev = "a4aff95"

// A real mixed-version cluster: d0 runs the build from before levels and
// created the cluster; d1 and d2 run this build. After a failover puts
// this build in the lead, the old manager, which advertises no level,
// counts as the lowest: it is sent only single entries it knows, and
// every manager ends with the same state.
func TestMixedVersionWithThePreviousBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous release")
	}
	old := previousBuild(t, previousRev)
	d0 := newDaemonOf(t, "d0-"+previousRev, old)
	c := &cluster{tb: t, daemons: []*daemon{d0, newDaemon(t, "d1"), newDaemon(t, "d2")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	init, err := d0.client.Init(ctx, api.InitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c.init = init
	for _, d := range c.daemons[1:] {
		if _, err := d.client.Join(ctx, api.JoinRequest{Token: init.ManagerToken, Addr: init.Addr}); err != nil {
			t.Fatalf("join %s to the previous build's cluster: %v", d.name, err)
		}
	}
	c.waitHealthy()
	written := loadWrites(t, c.daemons, "a", 16, 8)
	d0.kill()
	l := c.leader()
	clusterVersionIs(t, l, fsm.LowestLevel)
	written = append(written, loadWrites(t, c.daemons[1:], "b", 16, 8)...)
	d0.start()
	c.waitHealthy()
	// The leader asked d0 its level and got no answer it knows.
	waitFor(t, 20*time.Second, "the leader to ask d0", func() bool {
		st, err := l.status()
		return err == nil && st.ClusterVersion == fsm.LowestLevel
	})
	st, err := l.status()
	if err != nil {
		t.Fatal(err)
	}
	mark := st.Raft.LastIndex
	written = append(written, loadWrites(t, c.daemons, "c", 16, 8)...)
	sameSecrets(t, c.daemons, written)
	if b, err := os.ReadFile(d0.log); err == nil && strings.Contains(string(b), "refusing log entry") {
		t.Errorf("the previous build refused entries:\n%s", grepLines(string(b), "refusing log entry"))
	}
	// What this build's leader proposed with d0 a member: no batch, and
	// no node.level, which the previous build would have skipped.
	var f *daemon
	for _, d := range c.daemons[1:] {
		if d != l {
			f = d
		}
	}
	for idx, name := range dumpCommands(t, f) {
		if (idx > mark && name == "batch") || name == "node.level" {
			t.Errorf("entry %d is %s, with a manager of the previous build in the cluster", idx, name)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
