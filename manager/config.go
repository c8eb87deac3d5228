package manager

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/transport"
)

// level is the level this node runs at.
func (c *Config) level() int {
	if c.Level == 0 {
		return fsm.CurrentLevel
	}
	return c.Level
}

// Config configures one node.
type Config struct {
	// DataDir holds node.json, certs/, raft/ and the control socket.
	DataDir string
	// ListenAddr is the TCP address of the one port (raft, node API, join).
	// Port 0 picks a free port on first start; later starts reuse it.
	ListenAddr string
	// AdvertiseAddr is the address other nodes use; empty derives it from
	// ListenAddr (the bound address, or this machine's first non-loopback
	// address when ListenAddr's host is unspecified).
	AdvertiseAddr string
	// ListenAddrGiven and GossipAddrGiven say that ListenAddr and
	// GossipAddr were asked for (a flag), not defaults: a node whose
	// node.json records other addresses then moves to them (addrs.go).
	// An AdvertiseAddr that is set is always asked for.
	ListenAddrGiven, GossipAddrGiven bool
	// GossipAddr is where memberlist listens (UDP and TCP). Port 0 picks a
	// free port on first start; later starts reuse it. Other nodes reach
	// it at AdvertiseAddr's host and this port.
	GossipAddr string
	// SocketPath is the control socket; empty means <DataDir>/holdfast.sock.
	SocketPath string
	// SecretsDir is where the secrets granted to this node are written
	// (mode 0400); meant to be a tmpfs.
	SecretsDir string
	// UnlockKeyCommand, when set, is run (with /bin/sh -c) at start on a
	// locked node; its standard output is the unlock key. For a KMS, a TPM
	// or systemd-creds. The key is never written to disk.
	UnlockKeyCommand string
	// MetricsAddr, when set, is a TCP address where the node serves
	// Prometheus metrics (GET /metrics) and its health (GET /v1/health)
	// over plain HTTP; port 0 picks a free port (see Node.MetricsAddr).
	MetricsAddr string
	Logger      *slog.Logger
	// CertRecoveryWindow is how long after its expiry a node's latest
	// certificate may still be renewed through /join/recover (a node that
	// was down when it expired). Zero means DefaultRecoveryFactor times
	// the cluster's certificate expiry.
	CertRecoveryWindow time.Duration

	// Raft timing. Defaults are tuned for a LAN: a dead leader is noticed
	// within HeartbeatTimeout..2×HeartbeatTimeout. A follower refuses to
	// vote while it still knows a leader, so a failover waits for the later
	// of the surviving followers to notice (docs/PERFORMANCE.md).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many entries since the last snapshot make
	// raft take another; SnapshotInterval is how often it checks.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so
	// slow followers can catch up without a snapshot install.
	TrailingLogs uint64

	// ApplyTimeout bounds one write through raft, and ForwardTimeout a
	// request forwarded to the leader.
	ApplyTimeout   time.Duration
	ForwardTimeout time.Duration
	// WatchTimeout bounds one long poll of a node's view of itself.
	WatchTimeout time.Duration
	// DEKCheckInterval is how often a manager checks whether its DEK has
	// sealed enough records to be rotated.
	DEKCheckInterval time.Duration

	// Limits bound what peers may hold of this node: handshakes,
	// connections, requests, the time to write an answer (limits.go;
	// zero fields take transport's defaults). JoinFailureBurst failed
	// joins from one address are allowed in a row, then one every
	// JoinFailureEvery (zero: the defaults).
	Limits           transport.Limits
	JoinFailureBurst int
	JoinFailureEvery time.Duration

	// Level runs this build as one of an older level: it advertises that
	// level and stops at any entry such a build could not apply. 0 means
	// fsm.CurrentLevel. Only tests set it (the daemon's test-only
	// HOLDFAST_TEST_LEVEL), to run a mixed-level cluster of one binary.
	Level int
	// Clock, when set, is this node's wall clock (clockskew.go); nil
	// means time.Now. Only tests set it (the daemon's test-only
	// HOLDFAST_TEST_CLOCK_OFFSET), to run a manager whose clock is off.
	Clock func() time.Time

	// plainLog stores the raft log unsealed, in plain raft-boltdb; only
	// benchmarks set it, to measure what sealing costs.
	plainLog bool
	// gossipTune adjusts memberlist's configuration; tests shorten its
	// timings.
	gossipTune func(*memberlist.Config)
	// catchUpWait bounds how long a join waits for the new manager to
	// catch up after raft added it (0: 30 s); tests shorten it.
	catchUpWait time.Duration
	// applyGate, when set, is called before raft applies each batch of
	// entries; tests hold a manager's applying with it (catchup.go).
	applyGate func()
	// logSyncHook, when set, runs inside each write of a batch of raft
	// entries to this manager's log, after its sync; tests make its disk
	// slow with it.
	logSyncHook func()
}

// DefaultConfig returns the defaults for a node whose data lives in dataDir.
func DefaultConfig(dataDir string) Config {
	return Config{
		DataDir:            dataDir,
		SecretsDir:         "/run/holdfast/secrets",
		ListenAddr:         "0.0.0.0:4242",
		GossipAddr:         "0.0.0.0:4243",
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   10 * time.Second,
		TrailingLogs:       10240,
		ApplyTimeout:       10 * time.Second,
		ForwardTimeout:     10 * time.Second,
		WatchTimeout:       20 * time.Second,
		DEKCheckInterval:   time.Minute,
	}
}

// Validate checks each field and the relations between them.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if c.SecretsDir == "" {
		errs = append(errs, errors.New("secrets dir is empty"))
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.ListenAddr, err))
	}
	if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
		errs = append(errs, fmt.Errorf("gossip address %q: %w", c.GossipAddr, err))
	}
	if c.CertRecoveryWindow < 0 {
		errs = append(errs, fmt.Errorf("certificate recovery window %v is negative", c.CertRecoveryWindow))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("metrics address %q: %w", c.MetricsAddr, err))
		}
	}
	if c.AdvertiseAddr != "" {
		host, port, err := net.SplitHostPort(c.AdvertiseAddr)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("advertise address %q: %w", c.AdvertiseAddr, err))
		case host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified():
			errs = append(errs, fmt.Errorf("advertise address %q: needs a host other nodes can reach", c.AdvertiseAddr))
		case port == "0":
			errs = append(errs, fmt.Errorf("advertise address %q: needs a port", c.AdvertiseAddr))
		}
	}
	if c.HeartbeatTimeout < 50*time.Millisecond || c.ElectionTimeout < 50*time.Millisecond {
		errs = append(errs, errors.New("heartbeat and election timeouts must be at least 50ms"))
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("leader lease timeout %s must not exceed heartbeat timeout %s", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	if c.ApplyTimeout <= 0 || c.ForwardTimeout <= 0 || c.WatchTimeout <= 0 || c.DEKCheckInterval <= 0 {
		errs = append(errs, errors.New("apply, forward and watch timeouts and the DEK check interval must be positive"))
	}
	if c.Level < 0 || c.Level > fsm.CurrentLevel {
		errs = append(errs, fmt.Errorf("level %d: this build runs at levels %d to %d", c.Level, fsm.LowestLevel, fsm.CurrentLevel))
	}
	if c.SnapshotThreshold == 0 || c.SnapshotInterval <= 0 {
		errs = append(errs, errors.New("snapshot threshold and interval must be positive"))
	}
	return errors.Join(errs...)
}

func (c *Config) socketPath() string {
	if c.SocketPath != "" {
		return c.SocketPath
	}
	return filepath.Join(c.DataDir, "holdfast.sock")
}
