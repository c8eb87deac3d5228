package manager

import (
	"context"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
)

func withMetrics(c *Config) { c.MetricsAddr = "127.0.0.1:0" }

// scrape reads GET /metrics from addr and parses it as Prometheus text.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: got %s, %q; want 200, text/plain", resp.Status, resp.Header.Get("Content-Type"))
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want (name=value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(want); i += 2 {
			match = match && labels[want[i]] == want[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Summary != nil:
			return float64(m.Summary.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := value(fams, name, labels...)
	if !ok {
		t.Fatalf("/metrics has no series %s%v", name, labels)
	}
	return v
}

// health asks GET /v1/health over plain HTTP at addr.
func healthHTTP(t *testing.T, addr string) (int, string) {
	t.Helper()
	c := api.NewClient(http.DefaultClient, "http://"+addr)
	h, err := c.Health(context.Background())
	if err != nil {
		t.Fatalf("GET /v1/health on %s: %v", addr, err)
	}
	return h.HTTPStatus(), h.Status
}

// checkHealth asks both the control socket and the metrics listener.
func checkHealth(t *testing.T, tn *testNode, wantCode int, wantStatus string) {
	t.Helper()
	h, err := tn.client.Health(ctxT(t))
	if err != nil {
		t.Fatalf("%s health on the control socket: %v", tn.name, err)
	}
	if h.Status != wantStatus || h.HTTPStatus() != wantCode {
		t.Errorf("%s health on the control socket: got %d %q; want %d %q", tn.name, h.HTTPStatus(), h.Status, wantCode, wantStatus)
	}
	code, status := healthHTTP(t, tn.node.MetricsAddr())
	if code != wantCode || status != wantStatus {
		t.Errorf("%s health on the metrics listener: got %d %q; want %d %q", tn.name, code, status, wantCode, wantStatus)
	}
}

// /metrics is Prometheus text with raft's series (through the go-metrics
// compat shim, in the default build and with -tags hashicorpmetrics) and
// holdfast's, whose values follow the node.
func TestMetricsPrometheusText(t *testing.T) {
	tn := newTestNode(t, "m0", withMetrics)
	if tn.node.MetricsAddr() == "" {
		t.Fatal("MetricsAddr is empty with a metrics listener configured")
	}
	checkHealth(t, tn, http.StatusServiceUnavailable, api.HealthUninitialized)
	if _, err := tn.client.Init(ctxT(t), api.InitRequest{}); err != nil {
		t.Fatal(err)
	}
	applied := mustValue(t, scrape(t, tn.node.MetricsAddr()), "holdfast_apply_duration_seconds", "result", "ok")
	for _, name := range []string{"one", "two"} {
		if _, err := tn.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: name, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	checkHealth(t, tn, http.StatusOK, api.HealthReady)

	var fams map[string]*dto.MetricFamily
	// raft emits its series from its own goroutines: wait for them.
	eventually(t, 10*time.Second, "raft series in /metrics", func() bool {
		fams = scrape(t, tn.node.MetricsAddr())
		_, leader := value(fams, "raft_state_leader")
		_, commit := value(fams, "raft_commitTime")
		return leader && commit
	})
	if fams["raft_commitTime"].GetType() != dto.MetricType_SUMMARY {
		t.Errorf("raft_commitTime is a %v; want a summary", fams["raft_commitTime"].GetType())
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"holdfast_locked", nil, 0},
		{"holdfast_leader", nil, 1},
		{"holdfast_secrets", nil, 2},
	} {
		if got := mustValue(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v: got %v; want %v", c.name, c.labels, got, c.want)
		}
	}
	// Series that other parts of holdfast drive are there from the start.
	for _, s := range [][]string{
		{"holdfast_key_rotations_total", "subsystem", "gossip"},
		{"holdfast_key_rotations_total", "subsystem", "ipsec"},
		{"holdfast_ca_rotations_total"},
		{"holdfast_unlock_attempts_total", "result", "invalid_key"},
		{"go_goroutines"},
	} {
		mustValue(t, fams, s[0], s[1:]...)
	}
	if got := mustValue(t, fams, "holdfast_apply_duration_seconds", "result", "ok"); got < applied+2 {
		t.Errorf("holdfast_apply_duration_seconds count: got %v after two writes; want at least %v", got, applied+2)
	}
	expiry := mustValue(t, fams, "holdfast_cert_expiry_timestamp_seconds")
	cr := tn.node.current().creds.Load()
	if want := float64(cr.Cert.Leaf.NotAfter.Unix()); expiry != want {
		t.Errorf("holdfast_cert_expiry_timestamp_seconds: got %v; want the certificate's NotAfter %v", expiry, want)
	}
	// The metrics listener serves nothing else.
	resp, err := http.Get("http://" + tn.node.MetricsAddr() + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/status on the metrics listener: got %s; want 404", resp.Status)
	}
}

// Health follows the node through locked, ready and no-leader, on the
// control socket and on the metrics listener; unlock attempts are counted
// by result.
func TestHealthAndUnlockMetrics(t *testing.T) {
	m0 := newTestNode(t, "m0", withMetrics)
	init, err := m0.client.Init(ctxT(t), api.InitRequest{Autolock: true})
	if err != nil {
		t.Fatal(err)
	}
	m0.stop()
	m0.start()
	checkHealth(t, m0, http.StatusServiceUnavailable, api.HealthLocked)
	before := scrape(t, m0.node.MetricsAddr())
	if got := mustValue(t, before, "holdfast_locked"); got != 1 {
		t.Errorf("holdfast_locked on a locked node: got %v; want 1", got)
	}
	if got := mustValue(t, before, "holdfast_cert_expiry_timestamp_seconds"); got < float64(time.Now().Unix()) {
		t.Errorf("holdfast_cert_expiry_timestamp_seconds on a locked node: got %v; want a time in the future", got)
	}
	if _, err := m0.client.Unlock(ctxT(t), api.UnlockRequest{Key: autolock.NewKey().String()}); err == nil {
		t.Fatal("a wrong key unlocked the node")
	}
	if _, err := m0.client.Unlock(ctxT(t), api.UnlockRequest{Key: "not a key"}); err == nil {
		t.Fatal("a malformed key unlocked the node")
	}
	checkHealth(t, m0, http.StatusServiceUnavailable, api.HealthLocked)
	if _, err := m0.client.Unlock(ctxT(t), api.UnlockRequest{Key: init.UnlockKey}); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	after := scrape(t, m0.node.MetricsAddr())
	for _, r := range []string{"invalid_key", "malformed", "ok"} {
		b := mustValue(t, before, "holdfast_unlock_attempts_total", "result", r)
		a := mustValue(t, after, "holdfast_unlock_attempts_total", "result", r)
		if a != b+1 {
			t.Errorf("holdfast_unlock_attempts_total{result=%q}: got %v after one attempt; want %v", r, a, b+1)
		}
	}
	if got := mustValue(t, after, "holdfast_locked"); got != 0 {
		t.Errorf("holdfast_locked after unlock: got %v; want 0", got)
	}
	// Unlocked, it leads and catches up with its own log (catching-up
	// until then), then is ready.
	eventually(t, 10*time.Second, "m0 to lead again, caught up", func() bool {
		st := m0.status()
		return st.IsLeader && st.State == api.StateReady
	})
	checkHealth(t, m0, http.StatusOK, api.HealthReady)

	// Two managers, one gone: no quorum, no leader.
	c := &testCluster{t: t, init: init, managers: []*testNode{m0}}
	m1 := c.join("m1", init.ManagerToken)
	eventually(t, 10*time.Second, "m1 a voter", func() bool { return len(m0.status().Managers) == 2 })
	m1.halt()
	eventually(t, 10*time.Second, "m0 without a leader", func() bool {
		h, err := m0.client.Health(ctxT(t))
		return err == nil && h.Status == api.HealthNoLeader
	})
	checkHealth(t, m0, http.StatusServiceUnavailable, api.HealthNoLeader)
}

// The hooks the data-plane key and CA rotation loops call move their
// series, and only theirs.
func TestRotationCounters(t *testing.T) {
	tn := newTestNode(t, "m0", withMetrics)
	before := scrape(t, tn.node.MetricsAddr())
	metricKeyRotated("gossip")
	metricKeyRotated("gossip")
	metricCARotated()
	after := scrape(t, tn.node.MetricsAddr())
	for _, c := range []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"holdfast_key_rotations_total", []string{"subsystem", "gossip"}, 2},
		{"holdfast_key_rotations_total", []string{"subsystem", "ipsec"}, 0},
		{"holdfast_ca_rotations_total", nil, 1},
	} {
		if got := mustValue(t, after, c.name, c.labels...) - mustValue(t, before, c.name, c.labels...); got != c.delta {
			t.Errorf("%s%v: went up by %v; want %v", c.name, c.labels, got, c.delta)
		}
	}
}

// TestOperationsListsEveryMetric: docs/OPERATIONS.md's table of holdfast's
// own series has a row for every series a node exports (process-wide and
// per node), and none that does not exist.
func TestOperationsListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(holdfast_[a-z_]+)(\\{[a-z_,]+\\})?` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	exported := map[string]bool{}
	families, err := newProcessRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "holdfast_") {
			exported[f.GetName()] = true
		}
	}
	descs := make(chan *prometheus.Desc, 32)
	nodeCollector{}.Describe(descs)
	close(descs)
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		exported[m[1]] = true
	}
	if len(exported) < 10 {
		t.Fatalf("found only %d series: %v", len(exported), exported)
	}
	for name := range exported {
		if !documented[name] {
			t.Errorf("docs/OPERATIONS.md does not list %s", name)
		}
	}
	for name := range documented {
		if !exported[name] {
			t.Errorf("docs/OPERATIONS.md lists %s, which no node exports", name)
		}
	}
}
