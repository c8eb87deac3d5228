package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"sort"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// The node logs through one *slog.Logger (Config.Logger). The libraries
// that bring their own logger are bridged into it here, once each: raft
// (hclog) and memberlist (*log.Logger). Their lines then come out in the
// daemon's format (--log-format text or json), filtered by its level, with
// their fields as slog attributes.

// levelTrace is hclog's TRACE, below slog's debug.
const levelTrace = slog.LevelDebug - 4

// newHCLogger bridges raft's hclog output into logger: hclog writes each
// line as JSON, and the bridge turns it into one slog record with hclog's
// level, message and fields.
func newHCLogger(logger *slog.Logger) hclog.Logger {
	level := hclog.Info
	switch {
	case logger.Enabled(context.Background(), levelTrace):
		level = hclog.Trace
	case logger.Enabled(context.Background(), slog.LevelDebug):
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       level,
		Output:      &hclogWriter{logger: logger},
		JSONFormat:  true,
		DisableTime: true,
	})
}

// hclogWriter receives hclog's JSON lines.
type hclogWriter struct{ logger *slog.Logger }

var hclogLevels = map[string]slog.Level{
	"trace": levelTrace, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warn": slog.LevelWarn, "error": slog.LevelError,
}

// Write logs each JSON line in p; a line that is not JSON is logged as is.
func (w *hclogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(p, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(line, &fields); err != nil {
			w.logger.Info(string(line))
			continue
		}
		level, ok := hclogLevels[str(fields["@level"])]
		if !ok {
			level = slog.LevelInfo
		}
		msg := str(fields["@message"])
		keys := make([]string, 0, len(fields))
		for k := range fields {
			if !strings.HasPrefix(k, "@") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		attrs := make([]slog.Attr, 0, len(keys))
		for _, k := range keys {
			attrs = append(attrs, slog.Any(k, fields[k]))
		}
		w.logger.LogAttrs(context.Background(), level, msg, attrs...)
	}
	return len(p), nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// newMemberlistLogger returns a *log.Logger for memberlist.Config.Logger
// that writes into logger: memberlist's "[DEBUG]", "[INFO]", "[WARN]" and
// "[ERR]" prefixes become slog levels, and its "memberlist: " tag goes (add
// a component attribute to logger instead). observe, if not nil, sees each
// line and may change its level.
func newMemberlistLogger(logger *slog.Logger, observe func(slog.Level, string) slog.Level) *log.Logger {
	return log.New(&prefixWriter{logger: logger, tag: "memberlist: ", observe: observe}, "", 0)
}

// prefixWriter logs lines of the form "[LEVEL] tag: message".
type prefixWriter struct {
	logger *slog.Logger
	tag    string
	// observe, when set, sees each line and may change its level.
	observe func(level slog.Level, line string) slog.Level
}

var prefixLevels = []struct {
	prefix string
	level  slog.Level
}{
	{"[TRACE]", levelTrace}, {"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		level := slog.LevelInfo
		for _, pl := range prefixLevels {
			if strings.HasPrefix(line, pl.prefix) {
				level = pl.level
				line = strings.TrimSpace(strings.TrimPrefix(line, pl.prefix))
				break
			}
		}
		line = strings.TrimPrefix(line, w.tag)
		if w.observe != nil {
			level = w.observe(level, line)
		}
		w.logger.Log(context.Background(), level, line)
	}
	return len(p), nil
}
