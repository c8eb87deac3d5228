// Package integration runs the real holdfast binary: several daemons on
// loopback, driven through their control sockets and the CLI, with real
// faults (kill -9). Its tests build the binary once (with -race when the
// tests themselves run with -race). TestCrashPoints also builds it with
// -tags failpoints and kills a manager at each named crash point
// (internal/failpoint) through HOLDFAST_FAILPOINT.
//
// The chaos suite (TestChaosQuick, TestChaosSoak) runs the faults of
// faults() in nemesis_test.go against five daemons in network namespaces.
// The chaos daemons run the failpoints build (no point armed) with low
// snapshot thresholds (chaosTuneEnv), so raft snapshots and compacts every
// few seconds under the workload. Among the faults (nemesis_links_test.go):
// one-way links (oneway-follower-deaf: the leader cannot reach a
// follower, and the follower must not run ahead of the leader's term;
// oneway-leader-deaf: the reverse; oneway-random: up to four random
// directed links), made with ip rules that prohibit packets to the
// receiver's ports in the sender's namespace; snapshot-catch-up (a
// follower cut off until the leader compacted past it, then healed under
// load: it must install a snapshot and catch up); slow-disk-leader (every
// fsync of the leader's power-cut filesystem tens of milliseconds slower:
// writes must go on; the cost and any handover are logged); and
// rotate-keys (data-plane keys set to rotate every 10 s for the rest of
// the run, and the unlock key, hence every manager's raft DEK, rotated
// while a follower is paused).
package integration
