package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestHelpers(t *testing.T) {
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

func TestWriteTable(t *testing.T) {
	rep := &Report{
		Time: "2026-01-02T03:04:05Z", Machine: Machine{CPUModel: "Test CPU", NumCPU: 2, GOMAXPROCS: 2, GoVersion: "go1.26", OS: "linux", Arch: "amd64"},
		Cluster:              ClusterInfo{Managers: 3, Autolock: true},
		SequentialWrite:      Sequential{Writes: 1000, P50Ms: 0.8, P99Ms: 2.5, Met: true},
		ConcurrentWrites:     Concurrent{Writers: 64, Writes: 20000, WritesPerSec: 9123.4, Met: true},
		Failover:             Trials{Trials: 10, P50Ms: 900, P99Ms: 2100},
		UnlockToFirstWrite:   Trials{Trials: 10, P50Ms: 200, P99Ms: 300, Met: true},
		SealedVsPlainLog:     LogFigures{SealedMBPerSec: 40, PlainMBPerSec: 41, Ratio: 0.976, Met: true},
		ManagerMemory:        Memory{Secrets: 10000, MaxRSSMiB: 160.2},
		DataPlaneKeyRotation: Trials{Trials: 3, P50Ms: 12.5, P99Ms: 20},
	}
	var out bytes.Buffer
	if err := WriteTable(&out, rep); err != nil {
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

// TestRunRefusesBadConfig: a config without a binary or a directory, or
// with trials out of range, starts nothing and says what is wrong.
func TestRunRefusesBadConfig(t *testing.T) {
	started := 0
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Dir: t.TempDir(), Trials: 1}, "no holdfast binary"},
		{Config{Binary: "holdfast", Trials: 1}, "no directory"},
		{Config{Binary: "holdfast", Dir: t.TempDir()}, "trials must be between 1 and 1000, not 0"},
		{Config{Binary: "holdfast", Dir: t.TempDir(), Trials: MaxTrials + 1}, "not 1001"},
	} {
		tc.cfg.Started = func(int) { started++ }
		rep, err := Run(t.Context(), tc.cfg)
		if rep != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%+v) = %v, %v; want an error containing %q", tc.cfg, rep, err, tc.want)
		}
	}
	if started != 0 {
		t.Errorf("a refused config started %d daemons", started)
	}
}
