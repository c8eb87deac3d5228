package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
)

// Metrics come from two places:
//
//   - process-wide: raft's own series (through go-metrics' Prometheus sink,
//     installed once per process as the go-metrics global), the Go runtime
//     and process collectors, and holdfast's counters and apply latency;
//   - per node: gauges read from the node at each scrape (lock state,
//     leadership, certificate expiry, secrets count).
//
// A daemon is one node per process, so the difference only shows in `holdfast
// dev` and tests, where the counters add up the nodes of the process.
//
// Nothing here ever carries key material or secret data: only counts,
// states and times.

// metricsRegistry holds the process-wide series.
var metricsRegistry = newProcessRegistry()

var (
	unlockAttempts = newCounterVec("holdfast_unlock_attempts_total",
		"Unlock attempts on this process's locked nodes, by result: ok, share (one share accepted, more needed), invalid_key (a well-formed key that opens nothing), malformed (not a key, or a bad checksum), throttled (refused by the backoff after wrong keys), error.",
		"result", unlockResults...)
	keyRotations = newCounterVec("holdfast_key_rotations_total",
		"Data-plane key rotations this node carried out as leader, by subsystem (gossip, ipsec).",
		"subsystem", "gossip", "ipsec")
	caRotations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_ca_rotations_total",
		Help: "Root CA rotations this node finished as leader (every node on the new root, the old one dropped).",
	})
	accessClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_connections_revoked_total",
		Help: "Open connections (raft, node API) this node closed because their peer lost its right: removed, demoted, or its certificate's root retired.",
	})
	peerRefusals = newCounterVec("holdfast_peer_refusals_total",
		"Peers refused on a handshake or a raft RPC because the cluster's state does not allow them, by protocol (raft, api).",
		"proto", "raft", "api")
	checkRefusals = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_writes_refused_before_log_total",
		Help: "Writes the leader refused before they entered the raft log, because they would have failed when applied (a name taken, an unknown node or secret).",
	})
	checkSkips = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_writes_unchecked_before_log_total",
		Help: "Writes the leader sent to the raft log without checking them first, because its state had not yet applied its commit index (the FSM checks them when applied).",
	})
	slowDiskHandovers = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "holdfast_slow_disk_handovers_total",
		Help: "Times this node, as leader, tried to hand leadership to another manager because its own log syncs held every write back (docs/OPERATIONS.md, \"A manager with a slow disk\").",
	})
	applyDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "holdfast_apply_duration_seconds",
		Help:    "Time for the leader to apply one write through raft, from proposal until the FSM applied it (result ok or error).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"result"})
)

// unlockResults are the values of holdfast_unlock_attempts_total's label.
var unlockResults = []string{"ok", "share", "invalid_key", "malformed", "throttled", "error"}

func newProcessRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		unlockAttempts, keyRotations, caRotations, accessClosed, peerRefusals, checkRefusals, checkSkips, slowDiskHandovers, applyDuration,
	)
	r.MustRegister(limitMetrics()...)
	for _, res := range []string{"ok", "error"} {
		applyDuration.WithLabelValues(res)
	}
	return r
}

func newCounterVec(name, help, label string, values ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, v := range values {
		c.WithLabelValues(v) // shown at 0 from the start
	}
	return c
}

// metricKeyRotated counts one rotation of a data-plane key (subsystem
// "gossip" or "ipsec") by this node's leader loop.
func metricKeyRotated(subsystem string) { keyRotations.WithLabelValues(subsystem).Inc() }

// metricCARotated counts one root CA rotation finished by this node as leader.
func metricCARotated() { caRotations.Inc() }

// metricUnlockAttempt counts one unlock attempt with its outcome, classified
// from Unlock's answer.
func metricUnlockAttempt(resp *api.UnlockResponse, err error) {
	result := "error"
	var ae *api.Error
	switch {
	case err == nil && resp != nil && resp.State == api.StateReady:
		result = "ok"
	case err == nil:
		result = "share"
	case errors.Is(err, errInvalidUnlockKey):
		result = "invalid_key"
	case errors.As(err, &ae) && ae.Code == api.CodeInvalidArgument:
		result = "malformed"
	case errors.Is(err, errUnlockThrottled):
		result = "throttled"
	}
	unlockAttempts.WithLabelValues(result).Inc()
}

// metricApplied records one write applied (or failed) through raft on the
// leader, started at start.
func metricApplied(start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	applyDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

// raftCounters are raft's counters that never expire from /metrics.
var raftCounters = []struct {
	name []string
	help string
}{
	{[]string{"state", "leader"}, "Times this node became the raft leader."},
	{[]string{"state", "candidate"}, "Times this node started an election."},
	{[]string{"state", "follower"}, "Times this node became a raft follower."},
	{[]string{"transition", "heartbeat_timeout"}, "Times this follower lost contact with the leader and became a candidate."},
	{[]string{"transition", "leader_lease_timeout"}, "Times this leader stepped down after losing contact with a quorum."},
	{[]string{"apply"}, "Commands this node applied through raft as leader."},
	{[]string{"restore"}, "Snapshots this node restored."},
}

var raftSink struct {
	once sync.Once
	err  error
}

// installRaftMetrics makes raft's metrics (and memberlist's, and every
// library on the go-metrics compat shim) reach the metrics registry, once
// per process. It goes through the compat package, which aliases
// armon/go-metrics in the default build and hashicorp/go-metrics with
// -tags hashicorpmetrics: the global sink is set in whichever the libraries
// were built against, so raft's series show in both builds.
func installRaftMetrics() error {
	raftSink.once.Do(func() {
		// Series not updated for 5 minutes go (a former leader's leader
		// gauges, a removed peer's replication series), except raft's
		// counters of state changes and writes, which stay for rate().
		var counters []gmprom.CounterDefinition
		for _, c := range raftCounters {
			counters = append(counters, gmprom.CounterDefinition{Name: append([]string{"raft"}, c.name...), Help: c.help})
		}
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
			Name:               "holdfast_go_metrics_sink",
			Expiration:         5 * time.Minute,
			Registerer:         metricsRegistry,
			CounterDefinitions: counters,
		})
		if err != nil {
			raftSink.err = fmt.Errorf("raft metrics sink: %w", err)
			return
		}
		conf := gometrics.DefaultConfig("") // no prefix: raft_…, memberlist_…
		conf.EnableHostname = false
		conf.EnableHostnameLabel = false
		conf.EnableServiceLabel = false
		conf.EnableRuntimeMetrics = false // the Go collector has them
		if _, err := gometrics.NewGlobal(conf, sink); err != nil {
			raftSink.err = fmt.Errorf("raft metrics: %w", err)
		}
	})
	return raftSink.err
}

// nodeCollector reads one node's gauges at each scrape: from the running
// incarnation, the lock state, and the certificate file.
type nodeCollector struct {
	current  func() *incarnation
	locked   func() *lockState
	skew     *clockSkew
	certPath string
}

var (
	descLocked = prometheus.NewDesc("holdfast_locked",
		"1 while this node is locked (autolock: its keys are wrapped and it waits for 'holdfast unlock'), else 0.", nil, nil)
	descLeader = prometheus.NewDesc("holdfast_leader",
		"1 while this node is the raft leader, else 0.", nil, nil)
	descCertExpiry = prometheus.NewDesc("holdfast_cert_expiry_timestamp_seconds",
		"When this node's TLS certificate expires, in Unix seconds.", nil, nil)
	descSecrets = prometheus.NewDesc("holdfast_secrets",
		"Secrets in the cluster's state, as this manager has applied it.", nil, nil)
	descLevel = prometheus.NewDesc("holdfast_level",
		"The level of this manager's build: which command types and versions it can apply.", nil, nil)
	descClusterVersion = prometheus.NewDesc("holdfast_cluster_version",
		"The lowest level among the managers, as this manager knows them: what the leader may propose.", nil, nil)
	descNeedsUpgrade = prometheus.NewDesc("holdfast_needs_upgrade",
		"1 while this manager is stopped at a log entry its build cannot apply (state needs-upgrade), else 0.", nil, nil)
	descLogSync = prometheus.NewDesc("holdfast_log_sync_seconds",
		"The median time this manager's disk took to write and sync a batch of raft entries to its log (WAL write and fdatasync) over the last 10 s; absent with fewer than 8 batches.", nil, nil)
	descClockSkew = prometheus.NewDesc("holdfast_clock_skew_seconds",
		"How far this manager's wall clock is off the median of the managers' clocks, as it measured (positive: ahead); absent until another manager answered.", nil, nil)
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLocked
	ch <- descLeader
	ch <- descCertExpiry
	ch <- descSecrets
	ch <- descLevel
	ch <- descClusterVersion
	ch <- descNeedsUpgrade
	ch <- descClockSkew
	ch <- descLogSync
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	locked := c.locked() != nil
	gauge(descLocked, boolFloat(locked))
	inc := c.current()
	var rn *raftNode
	if inc != nil {
		rn = inc.rn()
	}
	gauge(descLeader, boolFloat(rn != nil && rn.isLeader()))
	switch {
	case inc != nil:
		if cr := inc.creds.Load(); cr != nil && cr.Cert.Leaf != nil {
			gauge(descCertExpiry, float64(cr.Cert.Leaf.NotAfter.Unix()))
		}
	case locked:
		// The certificate is not wrapped, only its key: a locked node still
		// tells when its certificate expires.
		if b, err := os.ReadFile(c.certPath); err == nil {
			if t, err := certExpiry(b); err == nil {
				gauge(descCertExpiry, float64(t.Unix()))
			}
		}
	}
	if rn != nil {
		var count int
		rn.fsm.Read(func(s *fsm.State, _ uint64) { count = s.Secrets.Len() })
		gauge(descSecrets, float64(count))
		gauge(descLevel, float64(rn.fsm.Level()))
		gauge(descClusterVersion, float64(rn.clusterVersion()))
		gauge(descNeedsUpgrade, boolFloat(rn.fsm.NeedsUpgrade() != nil))
		if off, _, ok := c.skew.estimate(); ok {
			gauge(descClockSkew, off.Seconds())
		}
		if d, _, ok := rn.syncs.reading(time.Now()); ok {
			gauge(descLogSync, d.Seconds())
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Health answers GET /v1/health from this node's own view, at once.
func (a *healthAPI) Health(context.Context) *api.Health {
	if r := removedOf(a.removed); r != nil {
		return &api.Health{Status: decideHealth(stateFacts{removed: true}), NodeID: r.NodeID, Role: r.Role}
	}
	if l := a.locked(); l != nil {
		return &api.Health{Status: api.HealthLocked, NodeID: l.info.NodeID, Role: l.info.Role}
	}
	inc := a.current()
	if inc == nil {
		return &api.Health{Status: api.HealthUninitialized}
	}
	h := &api.Health{NodeID: inc.info.NodeID, Role: roleWorker}
	f := stateFacts{running: true}
	if rn := inc.rn(); rn != nil {
		h.Role = roleManager
		h.Leader, _ = rn.leaderInfo()
		f.manager, f.needsUpgrade, f.leaderKnown = true, rn.fsm.NeedsUpgrade() != nil, h.Leader != ""
		f.catchingUp, _ = rn.catchUp.progress(rn.fsm.Index())
	}
	h.Status = decideHealth(f)
	return h
}

// metricsHandler serves GET /metrics (Prometheus text), with node's own
// gauges, and GET /v1/health from health.
func metricsHandler(node prometheus.Collector, health api.HealthBackend, logger *slog.Logger) http.Handler {
	own := prometheus.NewRegistry()
	own.MustRegister(node)
	gatherers := prometheus.Gatherers{metricsRegistry, own}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{logger},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.Handle("GET /v1/health", api.HealthHandler(health))
	return api.Routes(mux, "the metrics listener serves GET /metrics and GET /v1/health")
}

type slogPrinter struct{ logger *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.logger.Warn("metrics: " + fmt.Sprint(v...)) }

// metricsListener serves GET /metrics and GET /v1/health over plain
// HTTP at Config.MetricsAddr, when one is configured.
type metricsListener struct {
	addr    string       // Config.MetricsAddr; "" for none
	handler http.Handler // metricsHandler
	logger  *slog.Logger
	bound   atomic.Value // the bound address (a string), once listening
}

// listen opens the metrics listener when one is configured.
func (m *metricsListener) listen() (net.Listener, error) {
	if m.addr == "" {
		return nil, nil
	}
	if err := installRaftMetrics(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on metrics address: %w", err)
	}
	m.bound.Store(ln.Addr().String())
	return ln, nil
}

// serve serves the metrics listener, if any; the returned function stops
// it and waits until it has stopped.
func (m *metricsListener) serve(ln net.Listener) (stop func()) {
	if ln == nil {
		return func() {}
	}
	srv := &http.Server{Handler: m.handler, ReadHeaderTimeout: 10 * time.Second}
	m.logger.Info("serving metrics and health over plain HTTP", "addr", ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.logger.Error("metrics listener stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}

// MetricsAddr returns the address the metrics listener is bound to, or ""
// when there is none (yet).
func (n *Node) MetricsAddr() string {
	s, _ := n.metrics.bound.Load().(string)
	return s
}
