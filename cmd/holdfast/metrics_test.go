package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/holdfast/holdfast/internal/testutil"
)

// getMetrics fetches and parses http://addr/metrics.
func getMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams
}

func getHealth(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/health")
	if err != nil {
		t.Fatalf("GET /v1/health: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var h struct{ Status string }
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("GET /v1/health: %s %q: %v", resp.Status, b, err)
	}
	return resp.StatusCode, h.Status
}

// The daemon's --metrics-addr serves /metrics with raft's and holdfast's
// series and /v1/health; --log-format json --log-level debug makes every
// line of its log one JSON object, raft's bridged lines included.
func TestDaemonMetricsAndJSONLogs(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "holdfast.sock")
	_, stderr, exited, stop := startCLI(t, "daemon", "--data-dir", dir, "--listen-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug",
		"--secrets-dir", filepath.Join(t.TempDir(), "secrets"))
	stderr.waitFor(t, "waiting for 'holdfast init'", exited)
	m := regexp.MustCompile(`"msg":"serving metrics and health over plain HTTP","addr":"([^"]+)"`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("the daemon does not log its metrics address:\n%s", stderr.String())
	}
	addr := m[1]
	if code, status := getHealth(t, addr); code != http.StatusServiceUnavailable || status != "uninitialized" {
		t.Errorf("health before init: got %d %q; want 503 uninitialized", code, status)
	}
	if r := runCLI(t, "init", "--socket", socket); r.code != exitOK {
		t.Fatalf("init: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLIInput(t, "x", "secret", "create", "s", "-", "--socket", socket); r.code != exitOK {
		t.Fatalf("secret create: exit %d, stderr %q", r.code, r.stderr)
	}
	if code, status := getHealth(t, addr); code != http.StatusOK || status != "ready" {
		t.Errorf("health after init: got %d %q; want 200 ready", code, status)
	}
	// raft emits its series from its own goroutines: scrape until they show.
	var fams map[string]*dto.MetricFamily
	testutil.Eventually(t, waitTimeout, func() (bool, string) {
		fams = getMetrics(t, addr)
		_, ok := fams["raft_state_leader"]
		return ok, "a raft_state_leader series in /metrics"
	})
	for _, name := range []string{"holdfast_locked", "holdfast_secrets", "holdfast_cert_expiry_timestamp_seconds",
		"holdfast_unlock_attempts_total", "holdfast_apply_duration_seconds", "holdfast_key_rotations_total", "holdfast_ca_rotations_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if got := fams["holdfast_secrets"].GetMetric()[0].GetGauge().GetValue(); got != 1 {
		t.Errorf("holdfast_secrets: got %v; want 1", got)
	}
	if code := stop(); code != exitOK {
		t.Errorf("daemon exit %d after interrupt; want 0", code)
	}
	raftLines := 0
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		if rec["component"] == "raft" {
			raftLines++
		}
	}
	if raftLines == 0 {
		t.Errorf("no raft line in the JSON log:\n%s", stderr.String())
	}
}

func TestMetricsAddrFlags(t *testing.T) {
	for _, args := range [][]string{
		{"daemon", "--metrics-addr", "9100"},
		{"dev", "--metrics-addr", "localhost"},
		{"dev", "--managers", "3", "--metrics-addr", "127.0.0.1:65534"},
	} {
		r := runCLI(t, args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, "holdfast: bad --metrics-addr") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line about --metrics-addr", args, r.code, r.stderr)
		}
	}
	got, err := devMetricsAddrs("127.0.0.1:9100", 3)
	if want := "[127.0.0.1:9100 127.0.0.1:9101 127.0.0.1:9102]"; err != nil || fmt.Sprint(got) != want {
		t.Errorf("devMetricsAddrs: got %v, %v; want %s", got, err, want)
	}
}
