package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"

	hfversion "github.com/holdfast/holdfast/internal/version"

	"github.com/holdfast/holdfast/internal/gctune"
	"github.com/holdfast/holdfast/manager"
)

func setupDaemon(c *cli, fs *flag.FlagSet) action {
	listen := fs.String("listen-addr", "0.0.0.0:4242", "TCP address for raft, the node API and joins (`HOST:PORT`)")
	advertise := fs.String("advertise-addr", "", "the address other nodes reach this one at (`HOST:PORT`); default: derived from --listen-addr")
	gossip := fs.String("gossip-addr", "0.0.0.0:4243", "where memberlist gossips, UDP and TCP (`HOST:PORT`); other nodes reach it at the advertise address's host")
	metrics := fs.String("metrics-addr", "", "serve Prometheus metrics (GET /metrics) and health (GET /v1/health) over plain HTTP on `HOST:PORT`; default: off")
	secretsDir := fs.String("secrets-dir", "/run/holdfast/secrets", "where the secrets granted to this node are written (`DIR`; meant to be a tmpfs)")
	level := newChoice(fs, "log-level", "info", "log `LEVEL`: debug, info, warn or error", "debug", "info", "warn", "error")
	format := newChoice(fs, "log-format", "text", "log `FORMAT`: text or json", "text", "json")
	allowCore := fs.Bool("allow-core-dumps", false, "let this process dump core (for debugging only: a core holds the node's keys and secrets in clear)")
	recoverWindow := fs.Duration("cert-recovery-window", 0, "how long after its expiry a node's latest certificate may still be renewed through this manager (`DUR`); default: twice the cluster's certificate expiry")
	unlockCmd := fs.String("unlock-key-command", "", "when this node starts locked, run `CMD` (with /bin/sh -c) and unlock with the key it prints on stdout (a KMS, a TPM, systemd-creds); the key is never written to disk")
	return func(ctx context.Context, args []string) error {
		if err := wantArgs(args); err != nil {
			return err
		}
		for _, a := range []struct{ flag, value string }{
			{"--listen-addr", *listen}, {"--advertise-addr", *advertise},
			{"--gossip-addr", *gossip}, {"--metrics-addr", *metrics},
		} {
			if err := checkHostPort(a.flag, a.value); err != nil {
				return err
			}
		}
		if *secretsDir == "" {
			return usagef("--secrets-dir needs a directory")
		}
		if *recoverWindow < 0 {
			return usagef("--cert-recovery-window must not be negative")
		}
		logger := newLogger(c.stderr, level.value, format.value)
		if *allowCore {
			logger.Warn("core dumps are allowed (--allow-core-dumps): a core file holds this node's keys and secrets in clear")
		} else if err := noCoreDumps(); err != nil {
			return fmt.Errorf("keep keys out of core dumps: %w (use --allow-core-dumps to run anyway)", err)
		}
		tuneGC(ctx)
		cfg := manager.DefaultConfig(c.dataDir())
		cfg.ListenAddr = *listen
		cfg.AdvertiseAddr = *advertise
		cfg.GossipAddr = *gossip
		fs.Visit(func(f *flag.Flag) {
			cfg.ListenAddrGiven = cfg.ListenAddrGiven || f.Name == "listen-addr"
			cfg.GossipAddrGiven = cfg.GossipAddrGiven || f.Name == "gossip-addr"
		})
		cfg.SocketPath = c.socket()
		cfg.SecretsDir = *secretsDir
		cfg.UnlockKeyCommand = *unlockCmd
		cfg.MetricsAddr = *metrics
		cfg.CertRecoveryWindow = *recoverWindow
		cfg.Logger = logger
		testTune(&cfg)
		testPprof(logger)
		if err := testClock(&cfg, logger); err != nil {
			return usagef("%v", err)
		}
		if v := os.Getenv(testLevelEnv); v != "" {
			l, err := strconv.Atoi(v)
			if err != nil {
				return usagef("%s=%q: want a level number", testLevelEnv, v)
			}
			cfg.Level = l
			logger.Warn("running as a build of an older level, for tests", "level", l, "env", testLevelEnv)
		}
		node, err := manager.New(cfg)
		if err != nil {
			return usagef("%v", err)
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		// The first signal starts a clean stop; a second one kills.
		context.AfterFunc(ctx, stop)
		logger.Info("holdfast daemon starting", "version", hfversion.String(), "data_dir", cfg.DataDir,
			"socket", cfg.SocketPath, "listen_addr", cfg.ListenAddr, "secrets_dir", cfg.SecretsDir,
			"unlock_key_command", cfg.UnlockKeyCommand != "", "gossip_addr", cfg.GossipAddr, "metrics_addr", cfg.MetricsAddr)
		logOpenFileLimit(logger, cfg.Limits)
		if err := node.Run(ctx); err != nil {
			return err
		}
		logger.Info("holdfast daemon stopped")
		return nil
	}
}

// testLevelEnv, when set, runs the daemon as a build of that older level
// (manager.Config.Level). Tests only: a mixed-level cluster of one binary.
const testLevelEnv = "HOLDFAST_TEST_LEVEL"

// checkHostPort checks an address flag; empty means unset.
func checkHostPort(flagName, addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("bad %s %q: want HOST:PORT", flagName, addr)
	}
	return nil
}

// newLogger returns a logger writing to w at level ("debug", "info", "warn",
// "error") in format ("text" or "json").
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // the flag accepts only valid levels
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// daemonGCPercent is the daemon's GOGC unless the environment sets one. A
// manager's live heap is small (tens of MiB with 10,000 secrets) and
// every write allocates, so with Go's default of 100 a busy manager
// collects very often; at 200 the collector's CPU under 64 writers
// roughly halves for a few tens of MiB more memory (docs/PERFORMANCE.md).
const daemonGCPercent = 200

// tuneGC sets daemonGCPercent unless GOGC is set, and then lowers it as
// the live heap grows (package gctune: a large state must not cost
// several times its size) until ctx ends.
func tuneGC(ctx context.Context) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
		go func() { _ = gctune.Run(ctx, gctune.DefaultConfig()) }()
	}
}
