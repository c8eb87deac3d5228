package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteStateTable(t *testing.T) {
	rep := &Report{
		Time: "2026-01-02T03:04:05Z", Machine: Machine{CPUModel: "Test CPU", NumCPU: 2, GOMAXPROCS: 2, GoVersion: "go1.26", OS: "linux", Arch: "amd64"},
		Cluster: ClusterInfo{Managers: 3, Autolock: true},
		State: &StateFigures{
			Secrets: 100000, FillSec: 80.5, FillWritesPerSec: 1242.2, RSSMiB: []float64{310.4, 250, 251}, RSSLeader: 0, MaxRSSMiB: 310.4,
			RSSEndMiB: []float64{200, 201, 202}, FileMiB: []float64{40, 41, 42}, FileEndMiB: []float64{130, 131, 132}, RSSGoal: "≤ 300 MiB (at 100,000)",
			ListQuietMs: 420, ListTableMs: 650, ListRunsMs: []float64{420, 430, 410}, ListGoal: "≤ 0.5 s (at 100,000)",
			Unlock:      Trials{Trials: 3, P50Ms: 450, P99Ms: 700, Met: true},
			Failover:    Trials{Trials: 3, P50Ms: 600, P99Ms: 2500},
			SnapshotSec: 1.5, SnapshotBytes: 150 << 20, RestoreSec: 2.25,
		},
	}
	var out bytes.Buffer
	if err := WriteTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"fill: 100,000 secrets of 1 KiB, 64 writers",
		"80.5 s (1,242 writes/s)",
		"310, 250, 251 MiB",
		"200, 201, 202 MiB",
		"40, 41, 42 MiB",
		"130, 131, 132 MiB",
		"secret ls -q p50 (3 runs, through a follower)",
		"0.420 s",
		"0.650 s",
		"unlock to first write on a follower p50 (3 trials)",
		"0.450 s",
		"2.500 s",
		"1.500 s, 150.0 MiB",
		"2.250 s",
		"Test CPU, 2 CPUs",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "secret ls (table)") && !strings.HasSuffix(line, "no") {
			t.Errorf("secret ls at 0.650 s shown as meeting ≤ 0.5 s: %q", line)
		}
		if strings.HasPrefix(line, "manager RSS after the fill") && !strings.HasSuffix(line, "no") {
			t.Errorf("RSS of 310 MiB shown as meeting ≤ 300 MiB: %q", line)
		}
		if strings.HasPrefix(line, "failover p99") && !strings.HasSuffix(line, "no") {
			t.Errorf("failover p99 at 2.5 s shown as meeting ≤ 2.0 s: %q", line)
		}
	}
	if strings.Contains(out.String(), "sequential write") || strings.Contains(out.String(), "simulated workers") {
		t.Errorf("the table shows figures the run did not measure:\n%s", out.String())
	}
}

// TestRunRefusesBadSecrets: a number of secrets out of range, or secrets
// with workers, starts nothing.
func TestRunRefusesBadSecrets(t *testing.T) {
	for _, tc := range []struct {
		secrets, workers int
		want             string
	}{
		{-1, 0, "secrets must be between 0 and 1000000"},
		{MaxSecrets + 1, 0, "secrets must be between 0 and 1000000"},
		{10, 10, "separate runs"},
	} {
		started := 0
		rep, err := Run(t.Context(), Config{Binary: "holdfast", Dir: t.TempDir(), Trials: 1, Secrets: tc.secrets, Workers: tc.workers, Started: func(int) { started++ }})
		if rep != nil || err == nil || !strings.Contains(err.Error(), tc.want) || started != 0 {
			t.Errorf("Run with %d secrets, %d workers = %v, %v (%d daemons started); want an error with %q and none", tc.secrets, tc.workers, rep, err, started, tc.want)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tholdfast\nVmRSS:\t  379336 kB\nRssAnon:\t  336944 kB\nRssFile:\t   42392 kB\n"
	if got, err := parseStatusKB(status, "RssFile:"); err != nil || got != 42392<<10 {
		t.Errorf("RssFile = %d, %v; want %d", got, err, 42392<<10)
	}
	for _, bad := range []string{"VmRSS:\t1 kB\n", "RssFile:\tx kB\n", "RssFile:\t1 MB\n"} {
		if got, err := parseStatusKB(bad, "RssFile:"); err == nil {
			t.Errorf("parseStatusKB(%q) = %d, nil; want an error", bad, got)
		}
	}
}
