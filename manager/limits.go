package manager

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/transport"
)

// Limits on abusive peers (docs/OPERATIONS.md, "Limits and abusive
// peers"): the transport's caps on handshakes, connections and requests,
// and the join guard below, which throttles the addresses that present
// wrong join tokens. Each refusal is counted in
// holdfast_limit_refusals_total by the limit's name.

// limitJoinFailures names the join guard's refusals in the metric.
const limitJoinFailures = "join_failures"

// The join guard's defaults: an address may fail DefaultJoinFailureBurst
// joins in a row, then one more every DefaultJoinFailureEvery.
const (
	DefaultJoinFailureBurst = 20
	DefaultJoinFailureEvery = 3 * time.Second
)

// joinGuardMaxAddrs bounds the addresses the join guard remembers.
const joinGuardMaxAddrs = 100_000

var limitRefusals = newCounterVec("holdfast_limit_refusals_total",
	"Peers refused, or connections ended, by a limit on abusive peers, by limit: handshakes, handshakes_per_ip (handshakes in progress; the connection closed before TLS), handshake_timeout (a handshake not finished in time), connections, connections_per_peer, requests, requests_per_peer (answered 429), write_timeout (a peer that did not read its answer), body_timeout (a peer that withheld a request's body), join_failures (an address over its failed join attempts, answered 429).",
	"limit", append(append([]string{}, transport.LimitNames...), limitJoinFailures)...)

// limitMetrics are the series registered in the process registry.
func limitMetrics() []prometheus.Collector { return []prometheus.Collector{limitRefusals} }

func metricLimit(limit string) { limitRefusals.WithLabelValues(limit).Inc() }

// withLimits sets the transport config's limits from the node's config,
// with the metric and the API's 429 answer.
func withLimits(tcfg *transport.Config, cfg Config) {
	tcfg.Limits = cfg.Limits
	tcfg.OnLimit = metricLimit
	tcfg.Refuse = refuseTooMany
}

// refuseTooMany answers a request refused by a limit: 429,
// too_many_requests, Retry-After one second.
func refuseTooMany(w http.ResponseWriter, r *http.Request, limit, message string) {
	w.Header().Set("Retry-After", "1")
	api.WriteError(w, api.Errorf(api.CodeTooManyRequests, "%s", message))
}

// joinGuard throttles the addresses that fail joins: a token bucket per
// source IP, one token spent for each join answered unauthenticated or
// permission_denied (a wrong token, a certificate that may not recover).
// A join takes a token before it runs and gives it back unless it failed
// so, so concurrent wrong joins cannot overdraw the bucket; an address
// with no token left is answered 429 with Retry-After before anything is
// checked. Right tokens cost nothing, so a storm of honest joins from
// one address (NAT, a provisioning host) is never throttled, and a right
// token from another address gets in while one address is throttled.
type joinGuard struct {
	burst float64
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*joinBucket
}

type joinBucket struct {
	tokens float64
	at     time.Time
}

func newJoinGuard(cfg Config) *joinGuard {
	g := &joinGuard{burst: float64(cfg.JoinFailureBurst), every: cfg.JoinFailureEvery, now: time.Now, buckets: map[string]*joinBucket{}}
	if g.burst <= 0 {
		g.burst = DefaultJoinFailureBurst
	}
	if g.every <= 0 {
		g.every = DefaultJoinFailureEvery
	}
	return g
}

// take spends a token of ip's bucket, or says how long until there is one.
func (g *joinGuard) take(ip string) (wait time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	b := g.buckets[ip]
	if b == nil {
		g.makeRoom(now)
		b = &joinBucket{tokens: g.burst, at: now}
		g.buckets[ip] = b
	}
	g.refill(b, now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(g.every)), false
	}
	b.tokens--
	return 0, true
}

// refund gives back a token taken for a join that did not fail.
func (g *joinGuard) refund(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.buckets[ip]; b != nil {
		b.tokens = min(g.burst, b.tokens+1)
	}
}

func (g *joinGuard) refill(b *joinBucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(g.burst, b.tokens+float64(el)/float64(g.every))
	}
	b.at = now
}

// makeRoom keeps the map bounded: buckets full again say nothing and go
// first; if that is not enough, any go.
func (g *joinGuard) makeRoom(now time.Time) {
	if len(g.buckets) < joinGuardMaxAddrs {
		return
	}
	for ip, b := range g.buckets {
		if g.refill(b, now); b.tokens >= g.burst {
			delete(g.buckets, ip)
		}
	}
	for ip := range g.buckets {
		if len(g.buckets) < joinGuardMaxAddrs*9/10 {
			break
		}
		delete(g.buckets, ip)
	}
}

// wrap guards the join handler h.
func (g *joinGuard) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			ip = r.RemoteAddr
		}
		wait, ok := g.take(ip)
		if !ok {
			metricLimit(limitJoinFailures)
			secs := max(1, int(math.Ceil(wait.Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			api.WriteError(w, api.Errorf(api.CodeTooManyRequests, "too many failed join attempts from %s: try again in %d s, with a valid token", ip, secs))
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if !failedCredential(sw.status) {
			g.refund(ip)
		}
	})
}

// statusWriter remembers the status of the answer (0: none written, 200).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// failedCredential reports whether a join answered status failed on its
// credential: the status of unauthenticated or permission_denied.
func failedCredential(status int) bool {
	return status == api.CodeUnauthenticated.Status() || status == api.CodePermissionDenied.Status()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
