// Package bench is the harness behind `holdfast bench`: it starts a
// cluster of real holdfast daemons on loopback and measures the product's
// performance figures against their goals — sequential write latency,
// throughput of 64 concurrent writers, failover after kill -9 of the
// leader, unlock to first write, the time a data-plane key rotation takes
// to reach every manager, holdfast's log store against plain raft-boltdb,
// and the managers' memory. It is a process supervisor (start, kill,
// restart, stop the daemons; never leave one behind), a workload (1 KiB
// secrets through the control sockets) and statistics (percentiles,
// medians), kept out of the command package so that the binary's command
// code stays flags, output and exit codes.
//
// # Caller's duties
//
//  1. Build the holdfast binary (or use the running one: os.Executable)
//     and make an empty directory; set both in a Config with the number
//     of trials (1 to MaxTrials), Quick for a short run, and optionally
//     Progress, Warn and Started.
//  2. Call Run with a context that ends on an interrupt. Run stops every
//     daemon it started before it returns, whatever happens; on an error
//     the daemons' data dirs and logs stay in the directory for the
//     caller to show or keep. Removing the directory is the caller's.
//  3. Print the Report: it marshals to the JSON document of
//     `holdfast bench --format json`, and WriteTable prints the table.
//
// Key files are read only through package keyfiles (whether a manager's
// keys are wrapped), and the log stores compared are raftlog's and
// raft-boltdb's, each in a directory of its own under Config.Dir.
//
// # Simulated workers
//
// With Config.Workers = N the run measures instead what N workers cost
// the managers (issue 21): N simulated workers in this process
// (workers.go), each joining with the worker token and then speaking the
// node API over mutual TLS with a certificate of its own, as a worker
// daemon's follower, secret delivery, renewer and CA syncer do; gossip is
// left out. The figures and what each measures are in
// docs/PERFORMANCE.md, "Workers at scale".
//
// # A large state
//
// With Config.Secrets = N the run measures instead what a state of N
// secrets of 1 KiB costs (state.go): it fills the cluster through the
// API, reads each manager's RSS, times `secret ls` by running the binary
// against a follower's socket, then `snapshot save` and `snapshot
// restore`, unlock to first write and failover. The figures are in
// docs/PERFORMANCE.md, "A large state".
package bench
