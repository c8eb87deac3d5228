// Package backoff is the one retry policy of holdfast's loops: capped
// exponential backoff with decorrelated jitter, so that nodes retrying
// against the same manager after the same failure spread out instead of
// arriving together.
//
// A loop that retries an operation must:
//
//  1. make one Backoff for the loop (New(base, max)) and own it: a
//     Backoff is not safe for concurrent use;
//  2. wait Next() after each failure, alongside whatever else the loop
//     waits for (its context, a leader change, a new view);
//  3. call Reset() after a success, so the next failure starts small.
//
// Each delay is drawn uniformly from [base, 3×previous], then capped at
// max (decorrelated jitter); the first is drawn from [base, 3×base]
// capped likewise. Delays therefore never fall below base, never exceed
// max, and grow by about 1.5× a step on average.
//
// The unlock throttle (autolock.Backoff) is not a retry loop and keeps
// its deterministic doubling.
package backoff
