package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/holdfast/holdfast/api"
)

// WorkerFigures are the figures of issue 21 for one number of simulated
// workers (`holdfast bench --workers N`).
type WorkerFigures struct {
	Workers int `json:"workers"`
	// JoinAllSec: from the first join to the last certificate granted,
	// joinConcurrency joins in flight; FollowingAllSec: to the last
	// worker's first view.
	JoinAllSec      float64 `json:"join_all_sec"`
	FollowingAllSec float64 `json:"following_all_sec"`
	// JoinRetries counts joins tried again after a temporary refusal.
	JoinRetries int64 `json:"join_retries"`
	// OrphansRemoved counts the worker records left by retried joins whose
	// first answer was lost, removed after the join (removeOrphans).
	OrphansRemoved int `json:"orphans_removed"`
	// Idle managers with N workers attached: RSS and CPU (% of one core)
	// of each, over IdleWindowSec.
	IdleWindowSec float64   `json:"idle_window_sec"`
	RSSMiB        []float64 `json:"rss_mib"`
	CPUPercent    []float64 `json:"cpu_percent"`
	// Writes with no workers, then with N attached, in the same run.
	SeqNone  Sequential `json:"seq_write_no_workers"`
	SeqN     Sequential `json:"seq_write_n_workers"`
	ConcNone Concurrent `json:"writers_no_workers"`
	ConcN    Concurrent `json:"writers_n_workers"`
	// WritesRetried* count the writes the cluster refused for a while
	// (no leader) and that were tried again.
	WritesRetriedNone int64 `json:"writes_retried_no_workers"`
	WritesRetriedN    int64 `json:"writes_retried_n_workers"`
	// Grant: from the grant call to its one worker holding the secret.
	Grant Trials `json:"grant_to_worker"`
	// KeyRotation: from the new key's creation to each worker holding
	// it, over every worker and rotation; AllMs is each rotation's last.
	KeyRotation      Trials    `json:"key_rotation_to_workers"`
	KeyRotationAllMs []float64 `json:"key_rotation_all_ms"`
	// Failover: from kill -9 of the leader to every worker holding the
	// keys the new leader rotated (connected to a survivor and current).
	Failover Trials `json:"failover_workers_current"`
	// CA rotation: to every worker on the new root, and to the rotation
	// done; the writes served meanwhile.
	CARotationAllSec  float64 `json:"ca_rotation_all_workers_sec"`
	CARotationDoneSec float64 `json:"ca_rotation_done_sec"`
	CAWrites          int64   `json:"ca_rotation_writes"`
	CAWriteErrors     int64   `json:"ca_rotation_write_errors"`
	CAWritesPerSec    float64 `json:"ca_rotation_writes_per_sec"`
	CAWriteMaxMs      float64 `json:"ca_rotation_write_max_ms"`
	CAWriteFirstError string  `json:"ca_rotation_write_first_error,omitempty"`
	// Done lists the figures measured, in order; a run that failed part
	// way has the ones before.
	Done []string `json:"done"`
	// Err is why the run stopped early, if it did.
	Err string `json:"error,omitempty"`
}

// Goals of issue 21, at N = 10,000.
const (
	goalJoinAll       = 120 * time.Second
	goalWorkerRSSMiB  = 1024
	goalIdleCPU       = 10.0 // % of one core
	goalWithinNone    = 0.20
	goalGrantP99      = time.Second
	goalKeyRotP99     = 2 * time.Second
	goalFailoverAll   = 10 * time.Second
	goalCARotationAll = 5 * time.Minute
)

// workerPlan is how much a workers run measures.
type workerPlan struct {
	idle      time.Duration
	grants    int
	rotations int
	failovers int
	caWriters int
}

func newWorkerPlan(quick bool, trials int) workerPlan {
	if quick {
		return workerPlan{idle: 5 * time.Second, grants: 20, rotations: 1, failovers: 1, caWriters: 4}
	}
	return workerPlan{idle: 10 * time.Second, grants: 100, rotations: 3, failovers: min(trials, 3), caWriters: 4}
}

// runWorkers measures the figures with cfg.Workers simulated workers. The
// write figures with no workers come first, then the join; the workers
// follow the cluster until the end.
func (b *bench) runWorkers(ctx context.Context) (*Report, error) {
	rep := &Report{
		Time:    time.Now().UTC().Format(time.RFC3339),
		Quick:   b.cfg.Quick,
		Machine: machineInfo(),
		Cluster: ClusterInfo{Managers: benchManagers, Autolock: true},
	}
	wf := &WorkerFigures{Workers: b.cfg.Workers}
	rep.Workers = wf
	b.data = make([]byte, benchSecretSize)
	_, _ = rand.Read(b.data)
	defer func() {
		b.stopAll()
		b.cfg.Progress.Done()
	}()
	if err := b.startCluster(ctx); err != nil {
		return nil, err
	}
	plan := newWorkerPlan(b.cfg.Quick, b.cfg.Trials)
	var f *fleet
	defer func() {
		if f != nil {
			f.stop()
		}
	}()
	steps := []struct {
		name string
		run  func() error
	}{
		{"writes with no workers", func() error { return b.measureWorkerWrites(ctx, &wf.SeqNone, &wf.ConcNone, &wf.WritesRetriedNone) }},
		{"join", func() error {
			b.step(true, "joining %s simulated workers", thousands(int64(wf.Workers)))
			var took time.Duration
			var err error
			start := time.Now()
			f, took, err = b.joinFleet(ctx, wf.Workers)
			if err != nil {
				return err
			}
			wf.JoinAllSec = round(took.Seconds(), 3)
			wf.JoinRetries = f.retries.Load()
			if wf.JoinRetries > 0 {
				if wf.OrphansRemoved, err = b.removeOrphans(ctx, f); err != nil {
					return err
				}
			}
			if err := b.waitAll(ctx, f, benchStepTimeout, "every worker's first view", func(st *workerState) bool { return st.views > 0 }); err != nil {
				return err
			}
			var last time.Time
			for _, w := range f.workers {
				last = maxTime(last, w.snapshot().firstView)
			}
			wf.FollowingAllSec = round(last.Sub(start).Seconds(), 3)
			return nil
		}},
		{"idle managers", func() error { return b.measureIdle(ctx, plan.idle, wf) }},
		{"writes with workers", func() error { return b.measureWorkerWrites(ctx, &wf.SeqN, &wf.ConcN, &wf.WritesRetriedN) }},
		{"grants", func() error { return b.measureGrants(ctx, f, plan.grants, &wf.Grant) }},
		{"key rotation", func() error { return b.measureWorkerKeyRotation(ctx, f, plan.rotations, wf) }},
		{"failover", func() error { return b.measureWorkerFailover(ctx, f, plan.failovers, &wf.Failover) }},
		{"CA rotation", func() error { return b.measureCARotation(ctx, f, plan.caWriters, wf) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// Keep the figures measured so far: a large N may break a
			// later step, and what came before is worth printing.
			wf.Err = fmt.Sprintf("%s: %v", s.name, err)
			b.warn("%s: %v", s.name, err)
			break
		}
		wf.Done = append(wf.Done, s.name)
	}
	rep.Cluster.Secrets = b.created.Load()
	return rep, nil
}

// measureWorkerWrites measures the sequential writes through the leader
// and the 64 concurrent writers as measureSequential and
// measureConcurrent do, except that a write the cluster refuses for a
// while (a leader lost under a loaded machine) is tried again and counted
// in retried instead of ending the run; a sequential write's latency
// includes its retries.
func (b *bench) measureWorkerWrites(ctx context.Context, seq *Sequential, conc *Concurrent, retried *int64) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	var retries atomic.Int64
	n := b.plan.seqWrites
	lat := make([]time.Duration, 0, n)
	b.step(true, "measuring sequential writes… 0/%d", n)
	for i := range n {
		start := time.Now()
		if err := b.createCounting(ctx, leader.client, "seq", &retries); err != nil {
			return fmt.Errorf("write %d through the leader (manager %d): %w", i+1, leader.num, err)
		}
		lat = append(lat, time.Since(start))
		b.step(i+1 == n, "measuring sequential writes… %d/%d", i+1, n)
	}
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	*seq = Sequential{Writes: n, SecretBytes: benchSecretSize, P50Ms: ms(p50), P99Ms: ms(p99), Goal: "within 20 % of no workers"}

	dur := b.plan.tputDuration
	b.step(true, "measuring %d concurrent writers… %.0f s", benchWriters, dur.Seconds())
	until := time.Now().Add(dur)
	var (
		done     atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for i := range benchWriters {
		cl := api.NewUnixClient(b.nodes[i%len(b.nodes)].socket)
		defer cl.Close()
		wg.Go(func() {
			for time.Now().Before(until) && wctx.Err() == nil {
				if err := b.createCounting(wctx, cl, "conc", &retries); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("writer %d: %w", i, err) })
					cancel()
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	rate := float64(done.Load()) / elapsed.Seconds()
	*conc = Concurrent{Writers: benchWriters, Writes: done.Load(), SecretBytes: benchSecretSize,
		Seconds: round(elapsed.Seconds(), 3), WritesPerSec: round(rate, 1), Goal: "within 20 % of no workers"}
	*retried = retries.Load()
	return nil
}

// retrying calls fn until it succeeds or fails with an error the cluster
// does not take back (retryableWrite), or ctx ends.
func retrying(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil || !retryableWrite(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-time.After(benchRetryInterval):
		}
	}
}

// createCounting is createRetrying, counting the retries.
func (b *bench) createCounting(ctx context.Context, cl *api.Client, kind string, retries *atomic.Int64) error {
	for {
		err := b.create(ctx, cl, kind)
		if err == nil || !retryableWrite(err) {
			return err
		}
		retries.Add(1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-time.After(benchRetryInterval):
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// measureIdle reads each manager's CPU time over window with the workers
// attached and idle (their polls parked), then its RSS.
func (b *bench) measureIdle(ctx context.Context, window time.Duration, wf *WorkerFigures) error {
	b.step(true, "measuring idle managers with %s workers attached for %s", thousands(int64(wf.Workers)), window)
	before := make([]time.Duration, len(b.nodes))
	for i, n := range b.nodes {
		t, err := readCPUTime(n.proc.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("manager %d: %w", n.num, err)
		}
		before[i] = t
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	el := time.Since(start)
	wf.IdleWindowSec = round(el.Seconds(), 3)
	wf.RSSMiB, wf.CPUPercent = nil, nil
	for i, n := range b.nodes {
		t, err := readCPUTime(n.proc.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("manager %d: %w", n.num, err)
		}
		wf.CPUPercent = append(wf.CPUPercent, round(100*float64(t-before[i])/float64(el), 1))
		rss, err := readRSS(n.proc.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("manager %d: %w", n.num, err)
		}
		wf.RSSMiB = append(wf.RSSMiB, round(float64(rss)/(1<<20), 1))
	}
	return b.alive()
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// readCPUTime returns the user and system CPU time process pid has used,
// from /proc/PID/stat.
func readCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read its CPU time: %w", err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the text of
// /proc/PID/stat; the command name (field 2) may hold spaces and
// parentheses, so fields count from the last ')'.
func parseStatCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/PID/stat: %d fields after the name", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/PID/stat times %q %q", f[11], f[12])
	}
	return time.Duration(u+st) * time.Second / clockTicks, nil
}

// measureGrants creates secrets and grants each to one worker (in turn
// over the fleet), timing from the grant call to that worker holding it,
// fetched and its digest checked.
func (b *bench) measureGrants(ctx context.Context, f *fleet, n int, out *Trials) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	var times []time.Duration
	stride := max(1, len(f.workers)/n)
	for i := range n {
		b.step(i == 0, "measuring a grant reaching its worker… %d/%d", i+1, n)
		w := f.workers[(i*stride)%len(f.workers)]
		var name string
		var id *api.SecretID
		if err := retrying(ctx, func() (err error) {
			// A new name for each try: one whose outcome was lost may
			// have been applied.
			name = fmt.Sprintf("bench-grant-%d", b.names.Add(1))
			id, err = leader.client.CreateSecret(ctx, api.SecretCreateRequest{Name: name, Data: b.data})
			return err
		}); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		b.created.Add(1)
		start := time.Now()
		if err := retrying(ctx, func() error { return leader.client.GrantSecret(ctx, id.ID, w.snapshot().nodeID) }); err != nil {
			return fmt.Errorf("grant %s: %w", name, err)
		}
		one := &fleet{workers: []*simWorker{w}}
		if err := b.waitAll(ctx, one, benchStepTimeout, "the granted secret at its worker", func(st *workerState) bool {
			_, ok := st.haveAt[id.ID]
			return ok
		}); err != nil {
			return err
		}
		w.mu.Lock()
		at := w.haveAt[id.ID]
		w.mu.Unlock()
		times = append(times, at.Sub(start))
	}
	p50, p99 := percentile(times, 0.5), percentile(times, 0.99)
	*out = Trials{Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times), Goal: "p99 ≤ 1 s", Met: p99 <= goalGrantP99}
	return nil
}

// measureWorkerKeyRotation has the cluster rotate its ipsec keys and
// times, for every worker, from the new key's creation (by the leader) to
// its arrival at the worker.
func (b *bench) measureWorkerKeyRotation(ctx context.Context, f *fleet, rotations int, wf *WorkerFigures) error {
	cl := b.nodes[0].client
	var per []time.Duration
	wf.KeyRotationAllMs = nil
	for r := range rotations {
		old, err := b.keyAgedForRotation(ctx, cl)
		if err != nil {
			return err
		}
		b.step(true, "measuring a key rotation reaching all %s workers… %d/%d", thousands(int64(len(f.workers))), r+1, rotations)
		if err := rotateKeysNow(ctx, cl); err != nil {
			return err
		}
		err = b.waitAll(ctx, f, benchStepTimeout, "the new ipsec key at every worker", func(st *workerState) bool { return st.ipsec > old.Lamport })
		if rerr := restoreKeyRotation(ctx, cl); err == nil && rerr != nil {
			err = fmt.Errorf("set --key-rotation back: %w", rerr)
		}
		if err != nil {
			return err
		}
		k, err := newestIPsec(ctx, cl)
		if err != nil {
			return err
		}
		var last time.Duration
		for _, w := range f.workers {
			d := w.snapshot().ipsecAt.Sub(k.CreatedAt)
			per = append(per, d)
			last = max(last, d)
		}
		wf.KeyRotationAllMs = append(wf.KeyRotationAllMs, ms(last))
	}
	p50, p99 := percentile(per, 0.5), percentile(per, 0.99)
	wf.KeyRotation = Trials{Trials: rotations, P50Ms: ms(p50), P99Ms: ms(p99), Goal: "p99 ≤ 2 s", Met: p99 <= goalKeyRotP99}
	return nil
}

// measureWorkerFailover kills the leader with SIGKILL and times until
// every worker is connected to a survivor and current: the survivors'
// new leader is made to rotate the ipsec keys as soon as it takes writes,
// and a worker is current when it holds that key. The figure is the last
// worker's; the killed manager is restarted and unlocked between trials.
func (b *bench) measureWorkerFailover(ctx context.Context, f *fleet, trials int, out *Trials) error {
	var times []time.Duration
	for t := 1; t <= trials; t++ {
		if _, err := b.keyAgedForRotation(ctx, b.nodes[0].client); err != nil {
			return err
		}
		leader, err := b.leader(ctx)
		if err != nil {
			return err
		}
		var survivor *daemon
		for _, n := range b.nodes {
			if n != leader && n.proc != nil {
				survivor = n
				break
			}
		}
		old, err := newestIPsec(ctx, survivor.client)
		if err != nil {
			return err
		}
		if err := b.waitAll(ctx, f, benchStepTimeout, "every worker holding the current ipsec key", func(st *workerState) bool { return st.ipsec >= old.Lamport }); err != nil {
			return err
		}
		b.step(true, "measuring failover with %s workers… trial %d/%d: killing the leader (manager %d)", thousands(int64(len(f.workers))), t, trials, leader.num)
		start := time.Now()
		leader.kill()
		wctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		err = rotateKeysNow(wctx, survivor.client)
		cancel()
		if err == nil {
			err = b.waitAll(ctx, f, benchStepTimeout, "every worker current after the failover", func(st *workerState) bool { return st.ipsec > old.Lamport })
		}
		if rerr := restoreKeyRotation(ctx, survivor.client); err == nil && rerr != nil {
			err = fmt.Errorf("set --key-rotation back: %w", rerr)
		}
		if err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
		var last time.Time
		for _, w := range f.workers {
			last = maxTime(last, w.snapshot().ipsecAt)
		}
		took := last.Sub(start)
		times = append(times, took)
		b.step(true, "measuring failover with workers… trial %d/%d: %.3f s; restarting manager %d", t, trials, took.Seconds(), leader.num)
		if err := b.restart(ctx, leader); err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
	}
	p50, p99 := percentile(times, 0.5), percentile(times, 0.99)
	*out = Trials{Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times), Goal: "≤ 10 s", Met: p99 <= goalFailoverAll}
	return nil
}

// measureCARotation rotates the cluster's CA through the leader and times
// until every worker holds a certificate from the new root, and until the
// rotation is done, while writers keep writing through the managers.
func (b *bench) measureCARotation(ctx context.Context, f *fleet, writers int, wf *WorkerFigures) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	wctx, stopWriters := context.WithCancel(ctx)
	start := time.Now()
	var (
		writes, errs atomic.Int64
		maxLat       atomic.Int64
		firstErr     atomic.Value
		wg           sync.WaitGroup
	)
	for i := range writers {
		cl := api.NewUnixClient(b.nodes[i%len(b.nodes)].socket)
		defer cl.Close()
		wg.Go(func() {
			for wctx.Err() == nil {
				s := time.Now()
				err := b.create(wctx, cl, "ca")
				if wctx.Err() != nil {
					return
				}
				if err != nil {
					if errs.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
					continue
				}
				writes.Add(1)
				d := int64(time.Since(s))
				for m := maxLat.Load(); d > m && !maxLat.CompareAndSwap(m, d); m = maxLat.Load() {
				}
			}
		})
	}
	// The writes are counted until the rotation is done, or until the
	// wait for it ends.
	defer func() {
		el := time.Since(start)
		stopWriters()
		wg.Wait()
		wf.CAWrites, wf.CAWriteErrors = writes.Load(), errs.Load()
		wf.CAWritesPerSec = round(float64(wf.CAWrites)/el.Seconds(), 1)
		wf.CAWriteMaxMs = ms(time.Duration(maxLat.Load()))
		if e, ok := firstErr.Load().(string); ok {
			wf.CAWriteFirstError = e
		}
	}()
	b.step(true, "rotating the CA with %s workers", thousands(int64(len(f.workers))))
	rot, err := leader.client.RotateCA(ctx, api.CARotateRequest{})
	if err != nil {
		return fmt.Errorf("rotate the CA: %w", err)
	}
	if err := b.waitAll(ctx, f, goalCARotationAll+benchStepTimeout, "every worker on the new root", func(st *workerState) bool { return st.issuer == rot.NewDigest }); err != nil {
		return err
	}
	var last time.Time
	for _, w := range f.workers {
		last = maxTime(last, w.snapshot().onIssuerAt)
	}
	wf.CARotationAllSec = round(last.Sub(start).Seconds(), 3)
	deadline := time.Now().Add(goalCARotationAll + benchStepTimeout)
	for {
		r, err := leader.client.CARotation(ctx)
		if err == nil && r.State == api.CARotationDone && r.ID == rot.ID {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("the CA rotation did not finish: %w", err)
			}
			return fmt.Errorf("the CA rotation did not finish: %d of %d nodes converted; %s", r.Converted, r.Nodes, waitingErrors(f, r.Waiting))
		}
		b.step(false, "waiting for the CA rotation to finish")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	wf.CARotationDoneSec = round(time.Since(start).Seconds(), 3)
	return nil
}

// waitingErrors tells, for the simulated workers among the nodes a CA
// rotation waits for, the last error each had.
func waitingErrors(f *fleet, waiting []api.CAWaitingFor) string {
	byID := map[string]*simWorker{}
	for _, w := range f.workers {
		byID[w.snapshot().nodeID] = w
	}
	var out []string
	for _, n := range waiting {
		w, ok := byID[n.ID]
		if !ok {
			out = append(out, fmt.Sprintf("%s %s (not simulated)", n.Role, n.ID))
			continue
		}
		st := w.snapshot()
		out = append(out, fmt.Sprintf("simulated worker %d (%s, on root %.12s…): last error %v", w.num, n.ID, st.issuer, st.lastErr))
	}
	return "waiting for " + strings.Join(out, "; ")
}

// writeWorkerTable prints the figures of a workers run against their
// goals.
func writeWorkerTable(w io.Writer, r *Report) error {
	wf := r.Workers
	n := thousands(int64(wf.Workers))
	secs := func(msv float64) string { return fmt.Sprintf("%.3f s", msv/1000) }
	list := func(xs []float64, unit string) string {
		var s []string
		for _, x := range xs {
			s = append(s, fmt.Sprintf("%.1f", x))
		}
		return strings.Join(s, " / ") + unit
	}
	maxOf := func(xs []float64) float64 {
		m := 0.0
		for _, x := range xs {
			m = max(m, x)
		}
		return m
	}
	within := func(with, none float64, higherBetter bool) (string, bool) {
		if none == 0 {
			return "-", false
		}
		d := (with - none) / none
		if higherBetter {
			return fmt.Sprintf("%+.0f %%", 100*d), d >= -goalWithinNone
		}
		return fmt.Sprintf("%+.0f %%", 100*d), d <= goalWithinNone
	}
	done := map[string]bool{}
	for _, d := range wf.Done {
		done[d] = true
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "FIGURE (N = "+n+" simulated workers)\tVALUE\tGOAL (N = 10,000)\tMET\n")
	var rows [][4]string
	if done["join"] {
		rows = append(rows,
			[4]string{"time to join all N (each with its certificate)", fmt.Sprintf("%.3f s (%d retried, %d orphans removed)", wf.JoinAllSec, wf.JoinRetries, wf.OrphansRemoved), "≤ 120 s", yesNo(wf.JoinAllSec <= goalJoinAll.Seconds())},
			[4]string{"time to every worker's first view", fmt.Sprintf("%.3f s", wf.FollowingAllSec), "-", "-"})
	}
	if done["idle managers"] {
		rows = append(rows,
			[4]string{"manager RSS with N attached (each)", list(wf.RSSMiB, " MiB"), "≤ 1 GiB", yesNo(maxOf(wf.RSSMiB) <= goalWorkerRSSMiB)},
			[4]string{fmt.Sprintf("manager CPU, N idle workers (each, %.0f s)", wf.IdleWindowSec), list(wf.CPUPercent, " % of a core"), "≤ 10 %", yesNo(maxOf(wf.CPUPercent) <= goalIdleCPU)})
	}
	if done["writes with workers"] {
		if wf.WritesRetriedNone+wf.WritesRetriedN > 0 {
			rows = append(rows, [4]string{"writes tried again (no leader for a while): none / N attached", fmt.Sprintf("%d / %d", wf.WritesRetriedNone, wf.WritesRetriedN), "-", "-"})
		}
		d, ok := within(wf.SeqN.P50Ms, wf.SeqNone.P50Ms, false)
		rows = append(rows, [4]string{"secret write p50: none → N attached", fmt.Sprintf("%.3f → %.3f ms (%s)", wf.SeqNone.P50Ms, wf.SeqN.P50Ms, d), "within 20 %", yesNo(ok)})
		d, ok = within(wf.ConcN.WritesPerSec, wf.ConcNone.WritesPerSec, true)
		rows = append(rows, [4]string{fmt.Sprintf("%d writers: none → N attached", wf.ConcN.Writers), fmt.Sprintf("%s → %s writes/s (%s)", thousands(int64(wf.ConcNone.WritesPerSec+0.5)), thousands(int64(wf.ConcN.WritesPerSec+0.5)), d), "within 20 %", yesNo(ok)})
	}
	if done["grants"] {
		rows = append(rows, [4]string{fmt.Sprintf("a grant reaching its worker p99 (%d grants)", wf.Grant.Trials), fmt.Sprintf("%s (p50 %s)", secs(wf.Grant.P99Ms), secs(wf.Grant.P50Ms)), "≤ 1 s", yesNo(wf.Grant.Met)})
	}
	if done["key rotation"] {
		rows = append(rows, [4]string{fmt.Sprintf("ipsec key rotation reaching all N p99 (%d rotations)", wf.KeyRotation.Trials), fmt.Sprintf("%s (p50 %s, last %s)", secs(wf.KeyRotation.P99Ms), secs(wf.KeyRotation.P50Ms), secs(maxOf(wf.KeyRotationAllMs))), "≤ 2 s", yesNo(wf.KeyRotation.Met)})
	}
	if done["failover"] {
		rows = append(rows, [4]string{fmt.Sprintf("kill -9 of the leader → every worker connected and current (worst of %d)", wf.Failover.Trials), secs(maxOf(wf.Failover.TrialsMs)), "≤ 10 s", yesNo(wf.Failover.Met)})
	}
	if wf.CARotationAllSec > 0 {
		doneIn := "not done"
		if wf.CARotationDoneSec > 0 {
			doneIn = fmt.Sprintf("done %.3f s", wf.CARotationDoneSec)
		}
		rows = append(rows,
			[4]string{"CA rotation: all N on the new root", fmt.Sprintf("%.3f s (rotation %s)", wf.CARotationAllSec, doneIn), "≤ 5 min", yesNo(wf.CARotationAllSec <= goalCARotationAll.Seconds())},
			[4]string{"writes served meanwhile", fmt.Sprintf("%s writes/s, %d errors, max %.0f ms", thousands(int64(wf.CAWritesPerSec+0.5)), wf.CAWriteErrors, wf.CAWriteMaxMs), "keeps serving", yesNo(wf.CAWrites > 0 && wf.CAWriteErrors == 0)})
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row[0], row[1], row[2], row[3])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if wf.CAWriteFirstError != "" {
		if _, err := fmt.Fprintf(w, "\nfirst write error during the CA rotation: %s\n", wf.CAWriteFirstError); err != nil {
			return err
		}
	}
	if wf.Err != "" {
		if _, err := fmt.Fprintf(w, "\nstopped early: %s\n", wf.Err); err != nil {
			return err
		}
	}
	return nil
}
