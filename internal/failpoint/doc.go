// Package failpoint stops the process at named points, in test builds
// only: crash-consistency tests kill a real daemon in the middle of a
// multi-step write and check what a restart finds.
//
// Call Hit with a name from this package's constants at the point where a
// crash must be survivable. In the default build Hit does nothing and is
// inlined away: the product has no failpoint code path. Built with
// "-tags failpoints", Hit kills the process with SIGKILL (no deferred
// function runs, no buffer is flushed: like a power-less exit, except that
// what the kernel already holds is kept) when the environment variable
// HOLDFAST_FAILPOINT names it, as "name" (the first hit) or "name:N" (the
// N-th hit). Before dying it writes "failpoint NAME: killing the process"
// to stderr, so a test can tell its crash from another.
//
// # Caller's duties
//
//  1. Name each point with a constant listed in All, so a test can
//     enumerate every point; a point's name says what has happened when it
//     is hit ("committed": the new state is durable, nothing applied yet).
//  2. Put a point only where the process may die for real (after a write
//     or a sync, never inside a lock that a restart could not recover).
//  3. Never read HOLDFAST_FAILPOINT anywhere else, and never arm a point
//     in a product build.
package failpoint
