// Package integration runs the real holdfast binary: several daemons on
// loopback, driven through their control sockets and the CLI, with real
// faults (kill -9). Its tests build the binary once (with -race when the
// tests themselves run with -race). TestCrashPoints also builds it with
// -tags failpoints and kills a manager at each named crash point
// (internal/failpoint) through HOLDFAST_FAILPOINT.
//
// The chaos suite's churn fault (nemesis_churn_test.go) changes the
// membership while the workload writes: a follower removed with `node rm
// --force` and joined again, wiped, at its own address; a follower demoted
// and promoted; a spare node (in a sixth namespace) joining with the
// manager token or as a worker promoted, then leaving. It never removes a
// voter unless a majority of the voters left stay reachable from the
// leader. combined_test.go runs faults in pairs (two at once, each healing
// on its own schedule) where faultNeeds says they need nothing in common;
// TestChaosQuickPairs runs a few fixed pairs, the soak picks a pair for
// half its cycles and prints, per fault, its cycles alone and paired, the
// operations and unknown outcomes of those cycles, and the result.
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
// writes must go on and, alone, the leader must hand over to a manager
// with a fast disk within 45 s; the cost before and after is logged); and
// rotate-keys (data-plane keys set to rotate every 10 s for the rest of
// the run, and the unlock key, hence every manager's raft DEK, rotated
// while a follower is paused). new-address (nemesis_addr_test.go) kills a
// manager, the leader half the time, and restarts it at another IP of its
// namespace or another port, and waits until every node lists the new
// address; clock-skew (nemesis_skew_test.go) sets a manager's clock
// minutes or hours off through the failpoints build's clock offset file,
// and checks that it says so (status, or its log when it is too far behind
// to accept the others' certificates).
package integration
