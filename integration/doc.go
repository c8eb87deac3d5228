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
package integration
