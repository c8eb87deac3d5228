package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/holdfast/holdfast/api"
)

// MaxSecrets bounds Config.Secrets.
const MaxSecrets = 1_000_000

// The goals of issue 21 for a large state (100,000 secrets of 1 KiB).
const (
	goalStateRSSMiB   = 300
	goalStateListTime = 500 * time.Millisecond
	goalStateUnlock   = 500 * time.Millisecond
	// stateListRuns is how many times `secret ls` is timed per form.
	stateListRuns = 5
)

// StateFigures are the figures of a cluster filled with N secrets of
// 1 KiB (`holdfast bench --secrets N`, issue 21).
type StateFigures struct {
	Secrets     int `json:"secrets"`
	SecretBytes int `json:"secret_bytes"`
	// FillSec is how long the N creates took, 64 writers.
	FillSec          float64 `json:"fill_sec"`
	FillWritesPerSec float64 `json:"fill_writes_per_sec"`
	// RSSMiB is each manager's RSS once every manager applied the
	// fill (the leader's first: RSSLeader is its index); RSSEndMiB at the
	// end of the run, after the restarts of the failover and unlock
	// figures (each restarted manager read the state from a snapshot).
	RSSMiB    []float64 `json:"rss_mib"`
	RSSLeader int       `json:"rss_leader"`
	MaxRSSMiB float64   `json:"max_rss_mib"`
	RSSEndMiB []float64 `json:"rss_end_mib"`
	// FileMiB and FileEndMiB are the file-backed part of each RSS
	// (RssFile: bolt's memory map of the raft log, and the binary), which
	// the kernel can drop under memory pressure.
	FileMiB    []float64 `json:"rss_file_mib"`
	FileEndMiB []float64 `json:"rss_file_end_mib"`
	RSSGoal    string    `json:"rss_goal"`
	RSSMet     bool      `json:"rss_met"`
	// ListQuietMs and ListTableMs: `holdfast secret ls -q` and `holdfast
	// secret ls` (the table), the binary run against a follower's socket,
	// median of stateListRuns runs each, output discarded.
	ListQuietMs float64   `json:"secret_ls_q_ms"`
	ListTableMs float64   `json:"secret_ls_ms"`
	ListRunsMs  []float64 `json:"secret_ls_q_runs_ms"`
	ListGoal    string    `json:"secret_ls_goal"`
	ListMet     bool      `json:"secret_ls_met"`
	// Unlock to first write on a follower, and failover, as in the small
	// run (Trials each).
	Unlock   Trials `json:"unlock_to_first_write"`
	Failover Trials `json:"failover"`
	// Snapshot: `holdfast snapshot save` through the leader's socket;
	// Restore: `holdfast snapshot restore` of that file into a new data
	// dir, offline.
	SnapshotSec   float64 `json:"snapshot_save_sec"`
	SnapshotBytes int64   `json:"snapshot_bytes"`
	RestoreSec    float64 `json:"snapshot_restore_sec"`
}

// runState measures the figures of a large state: it fills the cluster
// with Config.Secrets secrets, then reads memory, times `secret ls`,
// unlock to first write, failover, and a backup's save and restore.
func (b *bench) runState(ctx context.Context) (*Report, error) {
	rep := &Report{
		Time:    time.Now().UTC().Format(time.RFC3339),
		Quick:   b.cfg.Quick,
		Machine: machineInfo(),
		Cluster: ClusterInfo{Managers: benchManagers, Autolock: true},
	}
	sf := &StateFigures{Secrets: b.cfg.Secrets, SecretBytes: benchSecretSize,
		RSSGoal: "≤ 300 MiB (at 100,000)", ListGoal: "≤ 0.5 s (at 100,000)"}
	rep.State = sf
	b.data = make([]byte, benchSecretSize)
	_, _ = rand.Read(b.data)
	defer func() {
		b.stopAll()
		b.cfg.Progress.Done()
	}()
	if err := b.startCluster(ctx); err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"fill", func() error { return b.fillState(ctx, sf) }},
		{"memory", func() error { return b.stateMemory(ctx, sf) }},
		{"secret ls", func() error { return b.stateList(ctx, sf) }},
		{"snapshot save and restore", func() error { return b.stateSnapshot(ctx, sf) }},
		{"unlock to first write", func() error {
			if err := b.measureUnlock(ctx, &sf.Unlock); err != nil {
				return err
			}
			sf.Unlock.Goal = "p50 ≤ 0.5 s (at 100,000)"
			sf.Unlock.Met = sf.Unlock.P50Ms <= ms(goalStateUnlock)
			return nil
		}},
		{"failover", func() error { return b.measureFailover(ctx, &sf.Failover) }},
		{"memory at the end", func() error {
			var err error
			sf.RSSEndMiB, sf.FileEndMiB, _, err = b.rssAll(ctx)
			return err
		}},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	rep.Cluster.Secrets = b.created.Load()
	return rep, nil
}

// fillState creates the secrets with benchWriters writers spread over
// the managers. A write the cluster refused for a while (a leader lost
// under the load of this busy machine) is tried again under a new name,
// so the fill ends with at least N secrets.
func (b *bench) fillState(ctx context.Context, sf *StateFigures) error {
	n := int64(sf.Secrets)
	write := func(ctx context.Context, cl *api.Client) error {
		wctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		defer cancel()
		return b.createRetrying(wctx, cl, "state")
	}
	done, took, err := b.createConcurrently(ctx, int(n), time.Time{}, write, func(done int64, el time.Duration) {
		b.step(true, "creating %s secrets of 1 KiB… %s/%s, %.0f s", thousands(n), thousands(done), thousands(n), el.Seconds())
	})
	if err != nil {
		return err
	}
	sf.FillSec = round(took.Seconds(), 2)
	sf.FillWritesPerSec = round(float64(done)/took.Seconds(), 1)
	return nil
}

// waitApplied waits until every manager applied the leader's last index.
func (b *bench) waitApplied(ctx context.Context) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	st, err := leader.client.Status(ctx)
	if err != nil {
		return err
	}
	target := st.Raft.CommitIndex
	return b.wait(ctx, "every manager to apply the fill", func(ctx context.Context) (bool, error) {
		for _, n := range b.nodes {
			st, err := n.client.Status(ctx)
			if err != nil || st.Raft.AppliedIndex < target {
				return false, nil
			}
		}
		return true, nil
	})
}

// rssAll reads every manager's RSS and its file-backed part, in MiB,
// and returns the leader's position among them.
func (b *bench) rssAll(ctx context.Context) (rss, file []float64, li int, err error) {
	leader, err := b.leader(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	for i, n := range b.nodes {
		pid := n.proc.cmd.Process.Pid
		r, err := readRSS(pid)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("manager %d: %w", n.num, err)
		}
		f, err := readRssFile(pid)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("manager %d: %w", n.num, err)
		}
		if n == leader {
			li = i
		}
		rss = append(rss, round(float64(r)/(1<<20), 1))
		file = append(file, round(float64(f)/(1<<20), 1))
	}
	return rss, file, li, nil
}

// readRssFile returns the file-backed part of process pid's RSS, in
// bytes, from the RssFile line of /proc/PID/status.
func readRssFile(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read its memory use: %w", err)
	}
	return parseStatusKB(string(b), "RssFile:")
}

// parseStatusKB finds "KEY N kB" in the text of /proc/PID/status.
func parseStatusKB(status, key string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return kb << 10, nil
			}
		}
		break
	}
	return 0, fmt.Errorf("no %s line in /proc/PID/status", key)
}

// stateMemory reads each manager's RSS once all applied the fill.
func (b *bench) stateMemory(ctx context.Context, sf *StateFigures) error {
	b.step(true, "waiting for every manager to apply the fill; reading VmRSS")
	if err := b.waitApplied(ctx); err != nil {
		return err
	}
	rss, file, li, err := b.rssAll(ctx)
	if err != nil {
		return err
	}
	sf.RSSMiB, sf.FileMiB, sf.RSSLeader = rss, file, li
	for _, v := range rss {
		sf.MaxRSSMiB = max(sf.MaxRSSMiB, v)
	}
	sf.RSSMet = sf.MaxRSSMiB <= goalStateRSSMiB
	return nil
}

// cli runs the holdfast binary with args, its output discarded unless
// out is set, and returns how long it took.
func (b *bench) cli(ctx context.Context, out io.Writer, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, b.cfg.Binary, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("holdfast %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return took, nil
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// stateList times `holdfast secret ls -q` and `holdfast secret ls`
// against a follower (a read there is as linearizable as on the leader),
// and checks that -q lists every secret.
func (b *bench) stateList(ctx context.Context, sf *StateFigures) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	var n *daemon
	for _, d := range b.nodes {
		if d != leader {
			n = d
			break
		}
	}
	var quiet, table []time.Duration
	for i := range stateListRuns {
		b.step(true, "timing secret ls through manager %d… %d/%d", n.num, i+1, stateListRuns)
		var lines lineCounter
		took, err := b.cli(ctx, &lines, "--socket", n.socket, "secret", "ls", "-q")
		if err != nil {
			return err
		}
		if lines.n < sf.Secrets {
			return fmt.Errorf("secret ls -q listed %d secrets; want at least %d", lines.n, sf.Secrets)
		}
		quiet = append(quiet, took)
		took, err = b.cli(ctx, io.Discard, "--socket", n.socket, "secret", "ls")
		if err != nil {
			return err
		}
		table = append(table, took)
	}
	sf.ListQuietMs, sf.ListTableMs = ms(percentile(quiet, 0.5)), ms(percentile(table, 0.5))
	sf.ListRunsMs = msList(quiet)
	sf.ListMet = max(sf.ListQuietMs, sf.ListTableMs) <= ms(goalStateListTime)
	return nil
}

// stateSnapshot times `holdfast snapshot save` through the leader and
// `holdfast snapshot restore` of the file into a new data dir.
func (b *bench) stateSnapshot(ctx context.Context, sf *StateFigures) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(b.root, "backup")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "state.snap")
	b.step(true, "timing snapshot save through manager %d", leader.num)
	took, err := b.cli(ctx, io.Discard, "--socket", leader.socket, "snapshot", "save", file)
	if err != nil {
		return err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	sf.SnapshotSec, sf.SnapshotBytes = round(took.Seconds(), 3), fi.Size()
	keyFile := filepath.Join(dir, "unlock.key")
	if err := os.WriteFile(keyFile, []byte(b.unlockKey+"\n"), 0o600); err != nil {
		return err
	}
	b.step(true, "timing snapshot restore into a new data dir")
	took, err = b.cli(ctx, io.Discard, "snapshot", "restore", file, "--data-dir", filepath.Join(dir, "restored"), "--key-file", keyFile)
	if err != nil {
		return err
	}
	sf.RestoreSec = round(took.Seconds(), 3)
	return nil
}

// writeStateTable prints the figures of a large state.
func writeStateTable(w io.Writer, r *Report) error {
	s := r.State
	secs := func(msv float64) string { return fmt.Sprintf("%.3f s", msv/1000) }
	mibs := func(v []float64) string {
		out := ""
		for i, x := range v {
			if i > 0 {
				out += ", "
			}
			out += fmt.Sprintf("%.0f", x)
		}
		return out + " MiB"
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "FIGURE\tVALUE\tGOAL\tMET\n")
	rows := [][4]string{
		{fmt.Sprintf("fill: %s secrets of 1 KiB, %d writers", thousands(int64(s.Secrets)), benchWriters), fmt.Sprintf("%.1f s (%s writes/s)", s.FillSec, thousands(int64(s.FillWritesPerSec+0.5))), "-", "-"},
		{fmt.Sprintf("manager RSS after the fill (leader is #%d)", s.RSSLeader+1), mibs(s.RSSMiB), s.RSSGoal, yesNo(s.RSSMet)},
		{"  of which file-backed (bolt's map, the binary)", mibs(s.FileMiB), "-", "-"},
		{"manager RSS at the end (after restarts)", mibs(s.RSSEndMiB), "-", "-"},
		{"  of which file-backed", mibs(s.FileEndMiB), "-", "-"},
		{fmt.Sprintf("secret ls -q p50 (%d runs, through a follower)", len(s.ListRunsMs)), secs(s.ListQuietMs), s.ListGoal, yesNo(s.ListQuietMs <= ms(goalStateListTime))},
		{"secret ls (table) p50", secs(s.ListTableMs), s.ListGoal, yesNo(s.ListTableMs <= ms(goalStateListTime))},
		{fmt.Sprintf("unlock to first write on a follower p50 (%d trials)", s.Unlock.Trials), secs(s.Unlock.P50Ms), "≤ 0.5 s (at 100,000)", yesNo(s.Unlock.Met)},
		{"unlock to first write p99", secs(s.Unlock.P99Ms), "-", "-"},
		{fmt.Sprintf("failover p50 (kill -9 of the leader, %d trials)", s.Failover.Trials), secs(s.Failover.P50Ms), "as with a small state (≤ 1.0 s)", yesNo(s.Failover.P50Ms <= ms(goalFailoverP50))},
		{"failover p99", secs(s.Failover.P99Ms), "≤ 2.0 s", yesNo(s.Failover.P99Ms <= ms(goalFailoverP99))},
		{"snapshot save (through the leader)", fmt.Sprintf("%.3f s, %.1f MiB", s.SnapshotSec, float64(s.SnapshotBytes)/(1<<20)), "printed", "-"},
		{"snapshot restore (offline, new data dir)", fmt.Sprintf("%.3f s", s.RestoreSec), "printed", "-"},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row[0], row[1], row[2], row[3])
	}
	return tw.Flush()
}
