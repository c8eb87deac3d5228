package main

import (
	"log/slog"

	"github.com/holdfast/holdfast/transport"
)

// The open-file limit. Go itself raises the soft RLIMIT_NOFILE to the
// hard limit (less one) when a program starts, on Linux and the BSDs
// since Go 1.19 (package syscall's init; it restores the old one for
// the programs it starts, which a Setrlimit of ours would stop), so the
// daemon does not raise it again: it logs the limit in effect, and
// warns when it is below what the connection limits may need. Only the
// hard limit, which the operator sets (LimitNOFILE= in the systemd unit,
// ulimit -Hn), can be raised further.

// openFileMargin is what a node needs besides its peers' connections and
// handshakes: raft's log and snapshots, bolt files, gossip, the control
// socket, the metrics listener, secrets files, its own dials.
const openFileMargin = 1024

// openFilesNeeded is the soft limit a node with limits l may need.
func openFilesNeeded(l transport.Limits) uint64 {
	return uint64(l.Descriptors()) + openFileMargin
}

// logOpenFileLimit logs the open-file limit in effect, and warns when
// soft is below what the node's limits may need.
func logOpenFileLimit(logger *slog.Logger, l transport.Limits) {
	soft, hard, err := openFileLimit()
	if err != nil {
		logger.Warn("cannot read the open-file limit", "err", err)
		return
	}
	checkOpenFileLimit(logger, l, soft, hard)
}

func checkOpenFileLimit(logger *slog.Logger, l transport.Limits, soft, hard uint64) {
	need := openFilesNeeded(l)
	logger.Info("open-file limit", "soft", soft, "hard", hard, "needed", need)
	if soft < need {
		logger.Warn("the open-file limit is below what this node's connection limits may need: under many workers or a flood of connections it may run out of descriptors; raise the hard limit (LimitNOFILE= in the systemd unit, ulimit -Hn) to at least the needed value",
			"soft", soft, "hard", hard, "needed", need)
	}
}
