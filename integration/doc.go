// Package integration runs the real holdfast binary: several daemons on
// loopback, driven through their control sockets and the CLI, with real
// faults (kill -9). Its tests build the binary once (with -race when the
// tests themselves run with -race). TestCrashPoints also builds it with
// -tags failpoints and kills a manager at each named crash point
// (internal/failpoint) through HOLDFAST_FAILPOINT.
package integration
