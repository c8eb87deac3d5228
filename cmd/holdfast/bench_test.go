package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/bench"
)

// buildHoldfast builds this command into a temporary directory: bench
// runs its daemons from a holdfast binary, which a test binary is not.
func buildHoldfast(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "holdfast")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// useBinary points bench at bin and records the PIDs of the daemons it
// starts; calling the returned function lists them.
func useBinary(t *testing.T, bin string, onStart func(n int)) func() []int {
	t.Helper()
	var mu sync.Mutex
	var pids []int
	benchBinary = bin
	benchStarted = func(pid int) {
		mu.Lock()
		pids = append(pids, pid)
		n := len(pids)
		mu.Unlock()
		if onStart != nil {
			onStart(n)
		}
	}
	t.Cleanup(func() { benchBinary, benchStarted = "", nil })
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), pids...)
	}
}

// checkGone checks that no process with one of pids exists any more: not
// running, and not a zombie left unreaped.
func checkGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("daemon process %d is still there after bench returned (kill -0: %v)", pid, err)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// checkEmpty checks that bench removed the directory it made in dir, and
// logs what it left when it did not.
func checkEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("bench left %s in the temporary directory", e.Name())
		logs, _ := filepath.Glob(filepath.Join(dir, e.Name(), "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("---- %s ----\n%s", l, b)
		}
	}
}

func TestBenchQuickJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of daemons and measures for about 15 s")
	}
	start := time.Now()
	bin := buildHoldfast(t)
	built := time.Now()
	pids := useBinary(t, bin, nil)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where bench makes its directory

	const trials = 2
	r := runCLI(t, "bench", "--quick", "--trials", "2", "--format", "json")
	t.Logf("bench took %s (the build before it %s); progress:\n%s", time.Since(built), built.Sub(start), r.stderr)
	checkGone(t, pids())
	if r.code != exitOK {
		checkEmpty(t, tmp)
		t.Fatalf("bench: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	checkEmpty(t, tmp)
	// 3 managers, each failover restarts the leader, each unlock trial a
	// follower.
	if got, want := len(pids()), 3+2*trials; got != want {
		t.Errorf("bench started %d daemons; want %d", got, want)
	}
	for _, want := range []string{"measuring sequential writes… 200/200", "measuring failover… trial 2/2", "measuring unlock to first write… trial 2/2", "measuring data-plane key rotation… 1/1", "stopping 3 managers"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("progress on stderr has no %q", want)
		}
	}

	// Every field, by its JSON name.
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, r.stdout)
	}
	fields := map[string][]string{
		"machine":                 {"cpu_model", "num_cpu", "gomaxprocs", "go_version", "os", "arch"},
		"cluster":                 {"managers", "autolock", "secrets"},
		"sequential_write":        {"writes", "secret_bytes", "p50_ms", "p99_ms", "goal", "met"},
		"concurrent_writes":       {"writers", "writes", "secret_bytes", "seconds", "writes_per_sec", "goal", "met"},
		"failover":                {"trials", "p50_ms", "p99_ms", "trials_ms", "goal", "met"},
		"unlock_to_first_write":   {"trials", "p50_ms", "p99_ms", "trials_ms", "goal", "met"},
		"sealed_vs_plain_log":     {"rounds", "batch_entries", "entry_bytes", "sealed_mb_per_sec", "plain_mb_per_sec", "sealed_rounds_mb_per_sec", "plain_rounds_mb_per_sec", "ratio", "goal", "met"},
		"manager_memory":          {"secrets", "secret_bytes", "max_rss_mib", "rss_mib", "goal", "met"},
		"data_plane_key_rotation": {"trials", "p50_ms", "p99_ms", "trials_ms", "goal", "met"},
	}
	for _, k := range []string{"time", "quick"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q in the JSON", k)
		}
	}
	for section, keys := range fields {
		checkKeys(t, section, doc[section], keys...)
	}

	// Sane values.
	var rep bench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339, rep.Time); err != nil {
		t.Errorf("time %q: %v", rep.Time, err)
	}
	if !rep.Quick || rep.Machine.GOMAXPROCS < 1 || rep.Machine.GoVersion == "" || rep.Machine.CPUModel == "" {
		t.Errorf("quick %v, machine %+v", rep.Quick, rep.Machine)
	}
	seq := rep.SequentialWrite
	if seq.Writes != 200 || seq.P50Ms <= 0 || seq.P50Ms > seq.P99Ms {
		t.Errorf("sequential_write = %+v; want 200 writes, 0 < p50 ≤ p99", seq)
	}
	conc := rep.ConcurrentWrites
	if conc.Writers != 64 || conc.Writes <= 0 || conc.WritesPerSec <= 0 || conc.Seconds <= 0 {
		t.Errorf("concurrent_writes = %+v; want 64 writers, writes/s > 0", conc)
	}
	for name, tr := range map[string]bench.Trials{"failover": rep.Failover, "unlock_to_first_write": rep.UnlockToFirstWrite} {
		if tr.Trials != trials || len(tr.TrialsMs) != trials || tr.P50Ms <= 0 || tr.P50Ms > tr.P99Ms {
			t.Errorf("%s = %+v; want %d trials, 0 < p50 ≤ p99", name, tr, trials)
		}
	}
	if kr := rep.DataPlaneKeyRotation; kr.Trials != 1 || len(kr.TrialsMs) != 1 || kr.P50Ms <= 0 || kr.P50Ms > 10000 {
		t.Errorf("data_plane_key_rotation = %+v; want one rotation, timed between 0 and the 10 s interval", kr)
	}
	lg := rep.SealedVsPlainLog
	if lg.SealedMBPerSec <= 0 || lg.PlainMBPerSec <= 0 || lg.Ratio <= 0 || lg.Rounds != len(lg.SealedRounds) || lg.Rounds != len(lg.PlainRounds) {
		t.Errorf("sealed_vs_plain_log = %+v", lg)
	}
	mem := rep.ManagerMemory
	if mem.Secrets != 2000 || len(mem.RSSMiB) != 3 || mem.MaxRSSMiB <= 0 {
		t.Errorf("manager_memory = %+v; want 2,000 secrets, the RSS of 3 managers", mem)
	}
	wantSecrets := int64(mem.Secrets+seq.Writes+2*trials) + conc.Writes
	if rep.Cluster.Managers != 3 || !rep.Cluster.Autolock || rep.Cluster.Secrets < wantSecrets {
		t.Errorf("cluster = %+v; want 3 autolocked managers, at least %d secrets", rep.Cluster, wantSecrets)
	}
}

// An interrupted bench stops every daemon it started and removes its
// temporary directory.
func TestBenchInterruptedStopsDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("starts daemons")
	}
	bin := buildHoldfast(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// ^C once the third manager is started.
	pids := useBinary(t, bin, func(n int) {
		if n == 3 {
			cancel()
		}
	})
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var stdout, stderr bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	code := c.run(ctx, []string{"bench", "--quick", "--trials", "1"})
	if code != exitError || !strings.Contains(stderr.String(), "holdfast: interrupted; every daemon bench started is stopped") {
		t.Errorf("interrupted bench: exit %d, stderr:\n%s", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("interrupted bench printed %q", stdout.String())
	}
	if got := len(pids()); got != 3 {
		t.Errorf("bench started %d daemons before the interrupt; want 3", got)
	}
	checkGone(t, pids())
	checkEmpty(t, tmp)
}

func TestBenchUsage(t *testing.T) {
	full := filepath.Join(t.TempDir(), "full")
	if err := os.MkdirAll(filepath.Join(full, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--trials", "0"}, "--trials must be between 1 and 1000"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "--format", "yaml"}, "invalid value"},
		{[]string{"bench", "--dir", full}, "is not empty"},
		{[]string{"bench", "--secrets", "-1"}, "--secrets must be between 0 and 1000000"},
		{[]string{"bench", "--secrets", "10", "--workers", "10"}, "separate runs"},
	} {
		r := runCLI(t, tc.args...)
		if r.code != exitUsage {
			t.Errorf("%v: exit %d; want %d", tc.args, r.code, exitUsage)
		}
		checkErrorLine(t, r, tc.want)
	}
	r := runCLI(t, "help")
	if !strings.Contains(r.stdout, "  bench ") {
		t.Errorf("help does not list bench:\n%s", r.stdout)
	}
}
