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
	var rep benchReport
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
	for name, tr := range map[string]benchTrials{"failover": rep.Failover, "unlock_to_first_write": rep.UnlockToFirstWrite} {
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

func TestBenchHelpers(t *testing.T) {
	ds := func(ms ...int) []time.Duration {
		var out []time.Duration
		for _, m := range ms {
			out = append(out, time.Duration(m)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in       []time.Duration
		p        float64
		want     time.Duration
		describe string
	}{
		{ds(5, 1, 3), 0.5, 3 * time.Millisecond, "median of 3"},
		{ds(2, 1), 0.5, time.Millisecond, "p50 of 2 is the lower"},
		{ds(2, 1), 0.99, 2 * time.Millisecond, "p99 of 2 is the higher"},
		{ds(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond, "p99 of 10 is the max"},
		{nil, 0.5, 0, "empty"},
	} {
		if got := percentile(tc.in, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v, %v) = %v; want %v", tc.describe, tc.in, tc.p, got, tc.want)
		}
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median = %v; want 2.5", got)
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 20000: "20,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q; want %q", n, got, want)
		}
	}
	if got := round(0.123456, 3); got != 0.123 {
		t.Errorf("round = %v", got)
	}
	rss, err := parseVmRSS(strings.NewReader("Name:\tholdfast\nVmPeak:\t  200 kB\nVmRSS:\t   51200 kB\n"))
	if err != nil || rss != 50<<20 {
		t.Errorf("parseVmRSS = %d, %v; want 50 MiB", rss, err)
	}
	if _, err := parseVmRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("parseVmRSS without a VmRSS line: no error")
	}
	if got := parseCPUModel(strings.NewReader("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")); got != "AMD EPYC 7B13" {
		t.Errorf("parseCPUModel = %q", got)
	}
	if got := parseCPUModel(strings.NewReader("")); got != "unknown" {
		t.Errorf("parseCPUModel of nothing = %q", got)
	}
}

func TestPrintBench(t *testing.T) {
	rep := &benchReport{
		Time: "2026-01-02T03:04:05Z", Machine: benchMachine{CPUModel: "Test CPU", NumCPU: 2, GOMAXPROCS: 2, GoVersion: "go1.26", OS: "linux", Arch: "amd64"},
		Cluster:              benchClusterInfo{Managers: 3, Autolock: true},
		SequentialWrite:      benchSequential{Writes: 1000, P50Ms: 0.8, P99Ms: 2.5, Met: true},
		ConcurrentWrites:     benchConcurrent{Writers: 64, Writes: 20000, WritesPerSec: 9123.4, Met: true},
		Failover:             benchTrials{Trials: 10, P50Ms: 900, P99Ms: 2100},
		UnlockToFirstWrite:   benchTrials{Trials: 10, P50Ms: 200, P99Ms: 300, Met: true},
		SealedVsPlainLog:     benchLog{SealedMBPerSec: 40, PlainMBPerSec: 41, Ratio: 0.976, Met: true},
		ManagerMemory:        benchMemory{Secrets: 10000, MaxRSSMiB: 160.2},
		DataPlaneKeyRotation: benchTrials{Trials: 3, P50Ms: 12.5, P99Ms: 20},
	}
	var out bytes.Buffer
	if err := printBench(&out, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	for _, want := range [][]string{
		{"sequential write p50 (1 KiB, 1,000 writes)", "0.800 ms", "≤ 1.0 ms", "yes"},
		{"64 concurrent writers (20,000 writes)", "9,123 writes/s", "≥ 8,000 writes/s", "yes"},
		{"failover p50", "0.900 s", "≤ 1.0 s", "yes"},
		{"failover p99", "2.100 s", "≤ 2.0 s", "no"},
		{"unlock to first write p50 (10 trials)", "0.200 s", "≤ 0.5 s", "yes"},
		{"sealed log store / plain raft-boltdb", "0.976 (40.0 / 41.0 MB/s)", "≥ 0.95", "yes"},
		{"manager memory (10,000 secrets of 1 KiB)", "160.2 MiB max RSS", "≤ 150 MiB", "no"},
		{"data-plane key rotation to all 3 managers p50 (3 rotations)", "0.013 s"},
		{"Test CPU, 2 CPUs, GOMAXPROCS 2, go1.26 linux/amd64; 2026-01-02T03:04:05Z"},
	} {
		found := false
		for _, l := range lines {
			all := true
			for _, w := range want {
				all = all && strings.Contains(l, w)
			}
			found = found || all
		}
		if !found {
			t.Errorf("no line with %q in:\n%s", want, out.String())
		}
	}
}
