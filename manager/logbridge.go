package manager

import (
	"bytes"
	"context"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger bridges raft's hclog output into slog, once: hclog formats a
// line, and the bridge turns its level tag into the slog level.
func newHCLogger(logger *slog.Logger) hclog.Logger {
	level := hclog.Info
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       level,
		Output:      &slogWriter{logger: logger},
		DisableTime: true,
	})
}

type slogWriter struct{ logger *slog.Logger }

// Write receives one formatted hclog line, e.g. "[WARN]  raft: msg: k=v".
func (w *slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for tag, l := range map[string]slog.Level{"[TRACE]": slog.LevelDebug - 4, "[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERROR]": slog.LevelError} {
		if strings.HasPrefix(line, tag) {
			level = l
			line = strings.TrimSpace(strings.TrimPrefix(line, tag))
			break
		}
	}
	line = strings.TrimPrefix(line, "raft: ")
	w.logger.Log(context.Background(), level, line)
	return len(p), nil
}
