// Package testutil is the one polling helper of holdfast's tests: tests
// wait on conditions, never with time.Sleep. Only _test.go files import
// it.
//
// A test that waits for something must:
//
//  1. pass a condition that is cheap and safe to call repeatedly, from
//     the test's goroutine, and that says what it saw when it is not met
//     yet (the failure message quotes the last one);
//  2. choose a timeout that is generous on a loaded 2-core machine: a
//     timeout is a failure, never a measurement.
//
// Eventually fails the test; Poll returns an error, for goroutines that
// must not call t.Fatal. Components that can run in a testing/synctest
// bubble should be tested there instead, on its fake clock.
package testutil
