package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/internal/seal"
	"github.com/holdfast/holdfast/raftlog"
)

// --- writes ---

// create makes one secret of 1 KiB through cl.
func (b *bench) create(ctx context.Context, cl *api.Client, kind string) error {
	name := fmt.Sprintf("bench-%s-%d", kind, b.names.Add(1))
	if _, err := cl.CreateSecret(ctx, api.SecretCreateRequest{Name: name, Data: b.data}); err != nil {
		return err
	}
	b.created.Add(1)
	return nil
}

// createRetrying makes one acknowledged write through cl, retrying while
// the cluster cannot take it yet: a temporary code (no leader, …), the
// node locked, or unreachable. Each attempt uses a new name, so an attempt whose outcome
// the cluster could not promise does not make the next one a conflict.
func (b *bench) createRetrying(ctx context.Context, cl *api.Client, kind string) error {
	for {
		err := b.create(ctx, cl, kind)
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

func retryableWrite(err error) bool {
	if errors.Is(err, api.ErrUnreachable) {
		return true
	}
	return api.CodeOf(err).Temporary() || errors.Is(err, api.ErrLocked)
}

// createConcurrently makes writes with benchWriters writers spread over
// the managers' sockets until limit writes are made or, when until is
// set, that time passes (a write started before it still counts); write
// makes one through a manager's client. report is called with the count
// now and then. It returns the writes acknowledged and the time they
// took.
func (b *bench) createConcurrently(ctx context.Context, limit int, until time.Time, write func(ctx context.Context, cl *api.Client) error, report func(done int64, elapsed time.Duration)) (int64, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]*api.Client, benchWriters)
	for i := range clients {
		clients[i] = api.NewUnixClient(b.nodes[i%len(b.nodes)].socket)
		defer clients[i].Close()
	}
	var (
		claimed, done atomic.Int64
		errOnce       sync.Once
		firstErr      error
		wg            sync.WaitGroup
	)
	start := time.Now()
	for i, cl := range clients {
		wg.Go(func() {
			for claimed.Add(1) <= int64(limit) && (until.IsZero() || time.Now().Before(until)) {
				if err := write(ctx, cl); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() {
							firstErr = fmt.Errorf("writer %d through manager %d: %w", i, b.nodes[i%len(b.nodes)].num, err)
						})
					}
					cancel()
					return
				}
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			elapsed := time.Since(start)
			if firstErr == nil && ctx.Err() != nil {
				firstErr = ctx.Err()
			}
			return done.Load(), elapsed, firstErr
		case <-tick.C:
			report(done.Load(), time.Since(start))
		}
	}
}

// creator returns a write for createConcurrently: one secret of kind.
func (b *bench) creator(kind string) func(context.Context, *api.Client) error {
	return func(ctx context.Context, cl *api.Client) error { return b.create(ctx, cl, kind) }
}

// --- the figures ---

// measureSequential: 1 KiB secrets created one at a time through the
// leader's control socket.
func (b *bench) measureSequential(ctx context.Context, out *Sequential) error {
	leader, err := b.leader(ctx)
	if err != nil {
		return err
	}
	n := b.plan.seqWrites
	lat := make([]time.Duration, 0, n)
	b.step(true, "measuring sequential writes… 0/%d", n)
	for i := range n {
		start := time.Now()
		if err := b.create(ctx, leader.client, "seq"); err != nil {
			return fmt.Errorf("write %d through the leader (manager %d): %w", i+1, leader.num, err)
		}
		lat = append(lat, time.Since(start))
		b.step(i+1 == n, "measuring sequential writes… %d/%d", i+1, n)
	}
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	*out = Sequential{
		Writes: n, SecretBytes: benchSecretSize, P50Ms: ms(p50), P99Ms: ms(p99),
		Goal: "p50 ≤ 1.0 ms", Met: p50 <= goalSeqP50,
	}
	return nil
}

// measureConcurrent: 64 writers over the three managers' sockets.
func (b *bench) measureConcurrent(ctx context.Context, out *Concurrent) error {
	dur, limit := b.plan.tputDuration, b.plan.tputMaxWrites
	b.step(true, "measuring %d concurrent writers… 0.0 s of %.0f s", benchWriters, dur.Seconds())
	done, elapsed, err := b.createConcurrently(ctx, limit, time.Now().Add(dur), b.creator("conc"), func(done int64, el time.Duration) {
		b.step(false, "measuring %d concurrent writers… %.1f s of %.0f s, %s writes", benchWriters, el.Seconds(), dur.Seconds(), thousands(done))
	})
	if err != nil {
		return err
	}
	b.step(true, "measuring %d concurrent writers… %s writes in %.1f s", benchWriters, thousands(done), elapsed.Seconds())
	rate := float64(done) / elapsed.Seconds()
	*out = Concurrent{
		Writers: benchWriters, Writes: done, SecretBytes: benchSecretSize,
		Seconds: round(elapsed.Seconds(), 3), WritesPerSec: round(rate, 1),
		Goal: "≥ 8,000 writes/s", Met: rate >= goalWritesPerSec,
	}
	return nil
}

// measureFailover: kill -9 of the leader to the next acknowledged write
// through a survivor; the killed manager is restarted, unlocked and the
// cluster healthy again before the next trial.
func (b *bench) measureFailover(ctx context.Context, out *Trials) error {
	var times []time.Duration
	for t := 1; t <= b.plan.trials; t++ {
		b.step(true, "measuring failover… trial %d/%d: killing the leader", t, b.plan.trials)
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
		wctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		start := time.Now()
		leader.kill()
		err = b.createRetrying(wctx, survivor.client, "failover")
		took := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("trial %d: write through manager %d after killing the leader (manager %d): %w", t, survivor.num, leader.num, err)
		}
		times = append(times, took)
		b.step(true, "measuring failover… trial %d/%d: %.3f s; restarting manager %d", t, b.plan.trials, took.Seconds(), leader.num)
		if err := b.restart(ctx, leader); err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
	}
	p50, p99 := percentile(times, 0.50), percentile(times, 0.99)
	*out = Trials{
		Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times),
		Goal: "p50 ≤ 1.0 s, p99 ≤ 2.0 s", Met: p50 <= goalFailoverP50 && p99 <= goalFailoverP99,
	}
	return nil
}

// measureUnlock: a follower is killed and started again, comes up locked;
// the figure is the time from the unlock call to the first acknowledged
// write through it.
func (b *bench) measureUnlock(ctx context.Context, out *Trials) error {
	var times []time.Duration
	for t := 1; t <= b.plan.trials; t++ {
		leader, err := b.leader(ctx)
		if err != nil {
			return err
		}
		var followers []*daemon
		for _, n := range b.nodes {
			if n != leader {
				followers = append(followers, n)
			}
		}
		n := followers[t%len(followers)]
		b.step(true, "measuring unlock to first write… trial %d/%d: restarting manager %d", t, b.plan.trials, n.num)
		n.kill()
		if err := b.startNode(ctx, n); err != nil {
			return err
		}
		st, err := n.client.Status(ctx)
		if err != nil {
			return fmt.Errorf("manager %d after a restart: %w", n.num, err)
		}
		if st.State != api.StateLocked {
			return fmt.Errorf("manager %d came up %s after a restart, not locked, though autolock is on; see %s", n.num, st.State, n.logPath)
		}
		wctx, cancel := context.WithTimeout(ctx, benchStepTimeout)
		start := time.Now()
		_, err = n.client.Unlock(wctx, api.UnlockRequest{Key: b.unlockKey})
		if err == nil {
			err = b.createRetrying(wctx, n.client, "unlock")
		}
		took := time.Since(start)
		cancel()
		if err != nil {
			return fmt.Errorf("trial %d: manager %d: %w; see %s", t, n.num, err, n.logPath)
		}
		times = append(times, took)
		b.step(true, "measuring unlock to first write… trial %d/%d: %.3f s", t, b.plan.trials, took.Seconds())
		if err := b.waitHealthy(ctx); err != nil {
			return fmt.Errorf("trial %d: %w", t, err)
		}
	}
	p50, p99 := percentile(times, 0.50), percentile(times, 0.99)
	*out = Trials{
		Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times),
		Goal: "p50 ≤ 0.5 s", Met: p50 <= goalUnlockP50,
	}
	return nil
}

// measureKeyRotation sets the shortest rotation interval and times each
// rotation from the moment the leader made the new keys (their creation
// time) to the moment the last manager's ipsec keyring stream delivered
// them, as a local data plane would get them.
func (b *bench) measureKeyRotation(ctx context.Context, out *Trials) error {
	type arrival struct {
		node int
		at   time.Time
		ring *api.Keyring
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	arrivals := make(chan arrival, 64)
	for _, n := range b.nodes {
		go func() {
			_ = n.client.WatchKeyring(wctx, "ipsec", func(k *api.Keyring) error {
				select {
				case arrivals <- arrival{n.num, time.Now(), k}:
				case <-wctx.Done():
				}
				return nil
			})
		}()
	}
	interval := benchKeyRotation.String()
	if _, err := b.nodes[0].client.Update(ctx, api.UpdateRequest{KeyRotation: &interval}); err != nil {
		return fmt.Errorf("set --key-rotation %s: %w", interval, err)
	}
	defer func() {
		def := (12 * time.Hour).String()
		_, _ = b.nodes[0].client.Update(context.WithoutCancel(ctx), api.UpdateRequest{KeyRotation: &def})
	}()
	newest := func(k *api.Keyring) api.Key { return k.Keys[len(k.Keys)-1] }
	seen := map[int]uint64{} // manager → newest Lamport time delivered
	var times []time.Duration
	deadline := time.NewTimer(benchKeyRotation*time.Duration(b.plan.rotations+1) + benchStepTimeout)
	defer deadline.Stop()
	var start uint64
	for len(times) < b.plan.rotations {
		b.step(true, "measuring data-plane key rotation… %d/%d (every %s)", len(times)+1, b.plan.rotations, interval)
		var reached map[int]time.Time
		var created time.Time
		var target uint64
		for reached == nil || len(reached) < len(b.nodes) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				return fmt.Errorf("rotations did not reach every manager in time")
			case a := <-arrivals:
				l := newest(a.ring).Lamport
				if l > seen[a.node] {
					seen[a.node] = l
				}
				if start == 0 {
					// The first keyring each stream sends is the current
					// one: time only the rotations after it.
					start = l
				}
				if target == 0 && l > start {
					target, created, reached = l, newest(a.ring).CreatedAt, map[int]time.Time{}
				}
				if target != 0 && l >= target {
					if _, ok := reached[a.node]; !ok {
						reached[a.node] = a.at
					}
				}
			}
		}
		var last time.Time
		for _, at := range reached {
			if at.After(last) {
				last = at
			}
		}
		times = append(times, last.Sub(created))
		start = target
	}
	p50, p99 := percentile(times, 0.50), percentile(times, 0.99)
	*out = Trials{Trials: len(times), P50Ms: ms(p50), P99Ms: ms(p99), TrialsMs: msList(times), Goal: "none (issue 6 asks for the figure)", Met: true}
	return nil
}

// measureMemory creates the secrets concurrently, then reads each
// manager's resident set size.
func (b *bench) measureMemory(ctx context.Context, out *Memory) error {
	n := b.plan.memSecrets
	b.step(true, "creating %s secrets of 1 KiB for the memory figure… 0/%s", thousands(int64(n)), thousands(int64(n)))
	done, _, err := b.createConcurrently(ctx, n, time.Time{}, b.creator("mem"), func(done int64, _ time.Duration) {
		b.step(false, "creating %s secrets of 1 KiB for the memory figure… %s/%s", thousands(int64(n)), thousands(done), thousands(int64(n)))
	})
	if err != nil {
		return err
	}
	b.step(true, "creating %s secrets of 1 KiB for the memory figure… %s/%s; reading VmRSS", thousands(int64(n)), thousands(done), thousands(int64(n)))
	*out = Memory{Secrets: int(done), SecretBytes: benchSecretSize, Goal: "≤ 150 MiB"}
	for _, node := range b.nodes {
		rss, err := readRSS(node.proc.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("manager %d: %w", node.num, err)
		}
		mib := round(float64(rss)/(1<<20), 1)
		out.RSSMiB = append(out.RSSMiB, mib)
		out.MaxRSSMiB = max(out.MaxRSSMiB, mib)
	}
	out.Met = out.MaxRSSMiB <= goalManagerRSSMiB
	return nil
}

// readRSS returns the resident set size of process pid, in bytes, from
// /proc/PID/status.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read its memory use: %w", err)
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds "VmRSS: N kB" in the text of /proc/PID/status.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmRSS line in /proc/PID/status")
}

// measureLog stores batches of 64 entries of 1 KiB, with fsync, through
// holdfast's log store (sealed, its write-ahead file, bolt behind it) and
// through plain raft-boltdb, in alternating rounds, as raftlog's
// BenchmarkStoreLogs does.
func (b *bench) measureLog(ctx context.Context, out *LogFigures) error {
	dir := filepath.Join(b.root, "log-bench")
	defer os.RemoveAll(dir)
	sealed, err := raftlog.Open(filepath.Join(dir, "sealed"), raftlog.Options{
		ClusterID: "holdfast-bench", Keys: raftlog.NewKeyring(seal.NewKey()),
	})
	if err != nil {
		return err
	}
	defer sealed.Close()
	if err := os.MkdirAll(filepath.Join(dir, "plain"), 0o700); err != nil {
		return err
	}
	plain, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "plain", raftlog.DBFile)})
	if err != nil {
		return err
	}
	defer plain.Close()

	data := make([]byte, benchSecretSize)
	for i := range data {
		data[i] = byte(i)
	}
	stores := []struct {
		store raft.LogStore
		next  uint64
		mbps  []float64
	}{{store: sealed, next: 1}, {store: plain, next: 1}}
	// A few batches each first, unmeasured: the files' first pages.
	for i := range stores {
		if _, err := storeRound(ctx, stores[i].store, &stores[i].next, data, 0, 8); err != nil {
			return err
		}
	}
	rounds := b.plan.logRounds
	for r := range rounds {
		b.step(true, "measuring sealed vs plain log… round %d/%d", r+1, rounds)
		// Alternate which store goes first.
		for k := range stores {
			s := &stores[(r+k)%len(stores)]
			mbps, err := storeRound(ctx, s.store, &s.next, data, b.plan.logRound, 0)
			if err != nil {
				return err
			}
			s.mbps = append(s.mbps, round(mbps, 2))
		}
	}
	sm, pm := median(stores[0].mbps), median(stores[1].mbps)
	ratio := 0.0
	if pm > 0 {
		ratio = sm / pm
	}
	*out = LogFigures{
		Rounds: rounds, BatchEntries: benchLogBatch, EntryBytes: benchSecretSize,
		SealedMBPerSec: round(sm, 2), PlainMBPerSec: round(pm, 2),
		SealedRounds: stores[0].mbps, PlainRounds: stores[1].mbps,
		Ratio: round(ratio, 3), Goal: "≥ 0.95", Met: ratio >= goalSealedPlain,
	}
	return nil
}

// storeRound stores batches of benchLogBatch entries in s, numbered from
// *next, for dur or, when dur is 0, batches times, and returns the MB/s
// (10⁶ bytes of entry data a second).
func storeRound(ctx context.Context, s raft.LogStore, next *uint64, data []byte, dur time.Duration, batches int) (float64, error) {
	start := time.Now()
	n := 0
	for dur > 0 && time.Since(start) < dur || dur == 0 && n < batches {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		logs := make([]*raft.Log, benchLogBatch)
		for i := range logs {
			logs[i] = &raft.Log{Index: *next, Term: 1, Type: raft.LogCommand, Data: data}
			*next++
		}
		if err := s.StoreLogs(logs); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n*benchLogBatch*len(data)) / time.Since(start).Seconds() / 1e6, nil
}
