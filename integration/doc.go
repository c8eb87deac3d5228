// Package integration runs the real holdfast binary: several daemons on
// loopback, driven through their control sockets and the CLI, with real
// faults (kill -9). Its tests build the binary once (with -race when the
// tests themselves run with -race).
package integration
