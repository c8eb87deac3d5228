package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

const (
	roleManager = ca.RoleManager
	roleWorker  = ca.RoleWorker
)

// Node is one holdfast node. Create it with New and drive it with Run.
type Node struct {
	cfg    Config
	logger *slog.Logger
	// dir is the data directory (datadir.go).
	dir dataDir

	// mu serialises lifecycle changes: init, join, leave, promotion and
	// demotion. Handlers that only read take inc through current().
	mu sync.Mutex

	incMu sync.RWMutex
	inc   *incarnation // nil while uninitialized

	// roleChange carries a request to re-read this node's role and switch
	// between manager and worker; the supervisor started by Run serves it.
	roleChange roleRequests
	control    *http.Server
	// stopping is set, under mu, when Run shuts down: init, join and
	// unlock then start nothing new.
	stopping bool

	// lock is set while the node is locked (autolock), under incMu.
	lock *lockState
	// sealed opens and checks the sealed raft log and rotates its DEK
	// (sealed.go).
	sealed *sealedLog
	// keyFiles owns the DEK file and the TLS key, and the KEK in memory.
	keyFiles *keyfiles.Store
	// expired is set, under mu, on a manager that could not start because
	// its certificate expired and no manager renewed it (expired.go).
	expired *nodeInfo
	// clk holds a clock for tests of certificate renewal; empty means
	// the real one.
	clk atomic.Value
	// keyClock holds a func() time.Time for tests of key rotation (the
	// loop's clock); keyKick wakes the rotation loop.
	keyClock atomic.Value
	keyKick  chan struct{}
	// metrics is the metrics listener (metrics.go).
	metrics *metricsListener
	// writes is the write path (apply.go): every write and linearizable
	// read goes through it.
	writes *writePath
	// access decides which peers may speak to this node (access.go).
	access *access
	// apis are the API adapters (adapters.go).
	apis *apis
	// recovery forces a new cluster from a manager that lost quorum
	// (recover.go).
	recovery *recovery
	// skew is this manager's clock offset from the others' (clockskew.go).
	skew *clockSkew
	// removal records that the cluster removed this node (removal.go).
	removal *removalRecord
}

// incarnation is everything a node runs while it is part of a cluster. A
// role change replaces the raft half; leave ends the whole incarnation.
type incarnation struct {
	infoMu     sync.Mutex // guards info.Managers on a worker
	info       *nodeInfo
	creds      *transport.CredStore
	credsCh    chan struct{}          // signalled by setCreds
	conns      *transport.ConnTracker // open authenticated connections, for access.watch
	tcfg       transport.Config
	mux        *transport.Mux
	nodeHTTP   *http.Client
	servers    []*http.Server
	serveWG    sync.WaitGroup
	raftPtr    atomic.Pointer[raftNode] // nil on a worker
	wantRole   wantedRole               // the role the cluster gives this node, or removed
	certMu     sync.Mutex               // one writer of the certificate files at a time
	cancel     context.CancelFunc
	loops      sync.WaitGroup
	workerSeen *seenSet
	// keys is what the node knows of the data-plane keys; gossip is its
	// memberlist once started. Both live as long as the incarnation,
	// across role changes.
	keys      *keyBox
	gossip    atomic.Pointer[transport.Gossip]
	caViews   chan *api.CAView // the latest CA view, for caSyncLoop
	peerTrust peerTrustCache   // node API callers' chains checked against the current roots
	// forwarders batch the writes this node forwards, by leader address.
	fwdMu      sync.Mutex
	forwarders map[string]*forwarder
}

// New checks cfg and returns a node that has not started yet.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, logger: cfg.Logger, dir: dataDir{dir: cfg.DataDir, level: cfg.level()}, keyFiles: keyfiles.New(cfg.DataDir), roleChange: make(chan struct{}, 1), keyKick: make(chan struct{}, 1)}
	n.skew = newClockSkew(MaxClockSkew, n.logger)
	n.skew.clock = n.cfg.now
	n.sealed = newSealedLog(n.dir, n.keyFiles, n.current, n.logger)
	n.removal = &removalRecord{dir: cfg.DataDir}
	n.writes = newWritePath(cfg, n.current)
	n.access = newAccess(n.current)
	n.access.now = n.cfg.now
	n.apis = newAPIs(n)
	n.recovery = newRecovery(n)
	n.metrics = &metricsListener{addr: cfg.MetricsAddr, logger: n.logger,
		handler: metricsHandler(nodeCollector{current: n.current, locked: n.locked, skew: n.skew, certPath: n.dir.path("certs", "node.pem")}, n.apis.health, n.logger)}
	return n, nil
}

// errStopping answers lifecycle requests that arrive during shutdown.
var errStopping = api.Errorf(api.CodeUnavailable, "the node is shutting down")

// current returns the running incarnation, or nil.
func (n *Node) current() *incarnation {
	n.incMu.RLock()
	defer n.incMu.RUnlock()
	return n.inc
}

func (n *Node) setCurrent(inc *incarnation) {
	n.incMu.Lock()
	n.inc = inc
	n.incMu.Unlock()
}

// Run serves the control socket, resumes the node if it has state, and
// blocks until ctx is done; then it shuts the node down gracefully.
func (n *Node) Run(ctx context.Context) error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	ln, err := listenControl(n.cfg.socketPath())
	if err != nil {
		return err
	}
	metricsLn, err := n.metrics.listen()
	if err != nil {
		ln.Close()
		return err
	}
	stopMetrics := n.metrics.serve(metricsLn)
	defer stopMetrics()
	// Resume before serving the control API, so nobody sees a node with
	// state as uninitialized; requests wait in the socket's backlog.
	info, err := n.dir.loadNodeInfo()
	if err == nil {
		info, err = n.removal.settle(info, n.wipeState)
	}
	var wrapped bool
	if err == nil && info != nil {
		if err = n.checkAddrs(info); err == nil { // before waiting locked
			wrapped, err = n.keyFiles.Wrapped()
		}
	}
	if err == nil && info != nil {
		if wrapped {
			n.setLocked(&lockState{info: info, backoff: autolock.NewBackoff(time.Now, time.After)})
			n.logger.Warn("this node is locked: its keys are wrapped under the autolock key; run 'holdfast unlock'", "node_id", info.NodeID)
		} else {
			n.mu.Lock()
			err = n.start(ctx, info, raftResume)
			if errors.Is(err, errCertExpired) && info.Role == roleManager {
				// Stay up for 'init --force-new-cluster' (expired.go).
				n.logger.Error("cannot start", "err", err)
				n.expired, err = info, nil
			}
			n.mu.Unlock()
		}
	}
	if err != nil {
		ln.Close()
		return err
	}
	if info == nil {
		n.logger.Info("node has no cluster state: waiting for 'holdfast init' or 'holdfast join'", "socket", n.cfg.socketPath())
	}
	n.control = &http.Server{Handler: lockedOnly(n.locked, removedOnly(n.removal.get, api.NewControlMux(n.apis.control(n)))), ReadHeaderTimeout: 10 * time.Second}
	controlDone := make(chan struct{})
	go func() {
		defer close(controlDone)
		if err := n.control.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("control socket stopped", "err", err)
		}
	}()

	if n.locked() != nil && n.cfg.UnlockKeyCommand != "" {
		n.unlockByCommand(ctx)
	}

	supervisorDone := make(chan struct{})
	superCtx, stopSuper := context.WithCancel(ctx)
	go func() {
		defer close(supervisorDone)
		n.runRunLoops(superCtx)
	}()

	<-ctx.Done()
	stopSuper()
	<-supervisorDone
	n.mu.Lock()
	n.stopping = true
	n.stop(true)
	n.mu.Unlock()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.control.Shutdown(shutdownCtx)
	<-controlDone
	_ = os.Remove(n.cfg.socketPath())
	n.logger.Info("node stopped")
	return nil
}

// listenControl opens the control socket with mode 0600, replacing a stale
// socket file but never a live daemon's.
func listenControl(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another holdfast daemon is serving %s", path)
	}
	if err := checkSocketDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	_ = os.Remove(path)
	// Created under a 0077 umask, so the socket is never, even for a
	// moment, open to others; chmod then makes it exactly 0600.
	ln, err := listenUnixPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("listen on control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// checkSocketDir refuses a control socket directory that users other than
// its owner may write to: whoever can write there can replace the socket
// with their own, and be the daemon to the operator's CLI.
func checkSocketDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("control socket directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("control socket directory %s is writable by others (mode %04o): whoever can write there can replace the socket; put the socket in a directory only its owner writes to (e.g. the data dir), or 'chmod go-w %s'", dir, perm, dir)
	}
	return nil
}

// start brings up an incarnation from info and the certificates on disk:
// the port, the node API and join servers, raft on a manager (bootstrapping
// a new single-server cluster when bootstrap is set), and the loops.
// n.mu must be held.
func (n *Node) start(ctx context.Context, info *nodeInfo, mode raftMode) (err error) {
	creds, err := startCredentials{files: n.keyFiles, log: n.logger, now: n.cfg.now}.load(ctx, info, mode)
	if err != nil {
		return err
	}
	inc := &incarnation{info: info, creds: transport.NewCredStore(creds), conns: transport.NewConnTracker(), credsCh: make(chan struct{}, 1), workerSeen: newSeenSet(), keys: newKeyBox(), caViews: make(chan *api.CAView, 1)}
	inc.tcfg = transport.Config{Creds: inc.creds, Authorize: n.access.authorize, Conns: inc.conns, Logger: n.logger.With("component", "transport"), Now: n.cfg.now}
	withLimits(&inc.tcfg, n.cfg)
	stored := *info
	plan, err := n.applyAddrPlan(info)
	if err != nil {
		return err
	}
	listen := plan.listen
	inc.mux, err = transport.Listen(listen, inc.tcfg)
	if err != nil && plan.listenStored {
		return fmt.Errorf("listen on %s (node.json's listen address): %w; to move this node, start it with --listen-addr and --advertise-addr", listen, err)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	defer func() {
		if err != nil {
			inc.shutdownServers()
		}
	}()
	if err := n.settleAddrs(info, inc.mux.Addr()); err != nil {
		return err
	}
	if logAddrMoves(n.logger, stored, info) {
		if err := n.dir.saveNodeInfo(info); err != nil {
			return err
		}
	}
	inc.nodeHTTP = transport.NewAPIClient(inc.tcfg)
	inc.serve(inc.mux.Listener(transport.ProtoAPI), api.NewNodeHandler(n.apis.node, n.access.peerOf), n.logger)
	inc.serve(inc.mux.Listener(transport.ProtoJoin), newJoinGuard(n.cfg).wrap(api.NewJoinHandler(n.apis.join)), n.logger)

	if info.Role == roleManager {
		rn, err := n.startRaft(inc, mode)
		if err != nil {
			return err
		}
		inc.setRN(rn)
	}
	checkSecretsDir(n.cfg.SecretsDir, n.logger)
	if err := n.removal.clear(); err != nil {
		n.logger.Warn("cannot forget an earlier removal of this node", "err", err)
	}
	n.setCurrent(inc)
	n.startLoops(context.WithoutCancel(ctx), inc)
	if rn := inc.rn(); rn != nil && mode == raftResume && !rn.inConfiguration() {
		// A manager raft does not know yet: a join or promotion that did
		// not finish (Join itself adds it; the supervisor retries).
		askRole(inc, n.roleChange, ca.RoleTarget{Role: roleManager})
	}
	n.logger.Info("node started", "node_id", info.NodeID, "cluster_id", info.ClusterID, "role", info.Role, "addr", info.AdvertiseAddr)
	return nil
}

// settleAddrs records the bound listen address (so port 0 keeps its port
// across restarts) and the advertise address.
func (n *Node) settleAddrs(info *nodeInfo, bound net.Addr) error {
	changed := false
	if info.ListenAddr == "" || hasPortZero(info.ListenAddr) {
		host, _, _ := net.SplitHostPort(n.cfg.ListenAddr)
		_, port, _ := net.SplitHostPort(bound.String())
		info.ListenAddr = net.JoinHostPort(host, port)
		changed = true
	}
	if info.AdvertiseAddr == "" {
		adv, err := advertiseFor(n.cfg.AdvertiseAddr, bound)
		if err != nil {
			return err
		}
		info.AdvertiseAddr = adv
		changed = true
	}
	if changed && fileExists(n.dir.nodeInfoPath()) {
		return n.dir.saveNodeInfo(info)
	}
	return nil
}

func hasPortZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// advertiseFor picks the address other nodes should use.
func advertiseFor(configured string, bound net.Addr) (string, error) {
	if configured != "" {
		return configured, nil
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return bound.String(), nil
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				return net.JoinHostPort(ipn.IP.String(), port), nil
			}
		}
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}

// serve runs an HTTP server on one of the mux's protocol listeners.
func (inc *incarnation) serve(ln net.Listener, h http.Handler, logger *slog.Logger) {
	srv := transport.NewHTTPServer(h)
	srv.ReadHeaderTimeout = 10 * time.Second
	srv.IdleTimeout = 2 * time.Minute
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	inc.servers = append(inc.servers, srv)
	inc.serveWG.Add(1)
	go func() {
		defer inc.serveWG.Done()
		_ = srv.Serve(ln)
	}()
}

func (inc *incarnation) shutdownServers() {
	for _, s := range inc.servers {
		_ = s.Close()
	}
	if inc.mux != nil {
		_ = inc.mux.Close()
	}
	inc.serveWG.Wait()
	if inc.nodeHTTP != nil {
		inc.nodeHTTP.CloseIdleConnections()
	}
}

// stop ends the current incarnation. graceful hands leadership over first.
// n.mu must be held.
func (n *Node) stop(graceful bool) {
	inc := n.current()
	if inc == nil {
		return
	}
	inc.stopLoops()
	inc.keys.close()
	if rn := inc.rn(); rn != nil {
		rn.shutdown(graceful, n.logger)
	}
	if g := inc.gossip.Load(); g != nil {
		g.Shutdown(graceful)
	}
	inc.shutdownServers()
	n.setCurrent(nil)
}

// setCreds replaces the node's TLS material (renewal, CA rotation) and
// tells access.watch, which re-checks open connections against the roots.
func (inc *incarnation) setCreds(c *transport.Credentials) {
	inc.creds.Store(c)
	select {
	case inc.credsCh <- struct{}{}:
	default:
	}
}

func (inc *incarnation) credsChanged() <-chan struct{} { return inc.credsCh }

// rn returns the incarnation's raft, nil on a worker.
func (inc *incarnation) rn() *raftNode { return inc.raftPtr.Load() }

func (inc *incarnation) setRN(rn *raftNode) { inc.raftPtr.Store(rn) }

// seenSet remembers when nodes last called this manager.
type seenSet struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func newSeenSet() *seenSet { return &seenSet{seen: map[string]time.Time{}} }

func (s *seenSet) mark(id string) {
	s.mu.Lock()
	s.seen[id] = time.Now()
	s.mu.Unlock()
}

func (s *seenSet) since(id string, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.seen[id]
	return ok && time.Since(t) < d
}

// leaderInfo returns the raft leader's ID and address, if known.
func (r *raftNode) leaderInfo() (string, string) {
	addr, id := r.r.LeaderWithID()
	return string(id), string(addr)
}
