package manager

import (
	"context"
	"crypto/x509"
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
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/keyfiles"
	"github.com/holdfast/holdfast/transport"
)

const (
	roleManager = fsm.RoleManager
	roleWorker  = fsm.RoleWorker
)

// Node is one holdfast node. Create it with New and drive it with Run.
type Node struct {
	cfg    Config
	logger *slog.Logger

	// mu serialises lifecycle changes: init, join, leave, promotion and
	// demotion. Handlers that only read take inc through current().
	mu sync.Mutex

	incMu sync.RWMutex
	inc   *incarnation // nil while uninitialized

	// roleChange carries a request to re-read this node's role and switch
	// between manager and worker; the supervisor started by Run serves it.
	roleChange chan struct{}
	control    *http.Server
	// stopping is set, under mu, when Run shuts down: init, join and
	// unlock then start nothing new.
	stopping bool

	// lock is set while the node is locked (autolock), under incMu.
	lock *lockState
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
	// metricsAddr is the bound metrics address (a string), once listening.
	metricsAddr atomic.Value
	// writes is the write path (apply.go): every write and linearizable
	// read goes through it.
	writes *writePath
}

// incarnation is everything a node runs while it is part of a cluster. A
// role change replaces the raft half; leave ends the whole incarnation.
type incarnation struct {
	infoMu     sync.Mutex // guards info.Managers on a worker
	info       *nodeInfo
	creds      *transport.CredStore
	credsCh    chan struct{}          // signalled by setCreds
	conns      *transport.ConnTracker // open authenticated connections, for watchAccess
	tcfg       transport.Config
	mux        *transport.Mux
	nodeHTTP   *http.Client
	servers    []*http.Server
	serveWG    sync.WaitGroup
	raftPtr    atomic.Pointer[raftNode] // nil on a worker
	wantRole   atomic.Value             // string: the role the cluster gives this node
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
	n := &Node{cfg: cfg, logger: cfg.Logger, keyFiles: keyfiles.New(cfg.DataDir), roleChange: make(chan struct{}, 1), keyKick: make(chan struct{}, 1)}
	n.writes = newWritePath(cfg, n.current)
	return n, nil
}

// errStopping answers lifecycle requests that arrive during shutdown.
var errStopping = api.Errorf(http.StatusServiceUnavailable, "the node is shutting down")

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
	metricsLn, err := n.listenMetrics()
	if err != nil {
		ln.Close()
		return err
	}
	stopMetrics := n.serveMetrics(metricsLn)
	defer stopMetrics()
	// Resume before serving the control API, so nobody sees a node with
	// state as uninitialized; requests wait in the socket's backlog.
	info, err := n.loadNodeInfo()
	var wrapped bool
	if err == nil && info != nil {
		wrapped, err = n.keyFiles.Wrapped()
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
	n.control = &http.Server{Handler: n.lockedHandler(api.NewControlHandler(n)), ReadHeaderTimeout: 10 * time.Second}
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
		var retry sync.WaitGroup
		retry.Go(func() { n.retryExpired(superCtx) })
		n.supervise(superCtx)
		retry.Wait()
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
	creds, err := n.loadStartCredentials(ctx, info, mode)
	if err != nil {
		return err
	}
	inc := &incarnation{info: info, creds: transport.NewCredStore(creds), conns: transport.NewConnTracker(), credsCh: make(chan struct{}, 1), workerSeen: newSeenSet(), keys: newKeyBox(), caViews: make(chan *api.CAView, 1)}
	inc.tcfg = transport.Config{Creds: inc.creds, Authorize: n.authorize, Conns: inc.conns, Logger: n.logger.With("component", "transport")}
	listen := info.ListenAddr
	if listen == "" {
		listen = n.cfg.ListenAddr
	}
	inc.mux, err = transport.Listen(listen, inc.tcfg)
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
	inc.nodeHTTP = transport.NewAPIClient(inc.tcfg)
	inc.serve(inc.mux.Listener(transport.ProtoAPI), api.NewNodeHandler(n, n.peerOf), n.logger)
	inc.serve(inc.mux.Listener(transport.ProtoJoin), api.NewJoinHandler(n), n.logger)

	if info.Role == roleManager {
		rn, err := n.startRaft(inc, mode)
		if err != nil {
			return err
		}
		inc.setRN(rn)
	}
	n.checkSecretsDir()
	n.setCurrent(inc)
	n.startLoops(context.WithoutCancel(ctx), inc)
	if rn := inc.rn(); rn != nil && mode == raftResume && !rn.inConfiguration() {
		// A manager raft does not know yet: a join or promotion that did
		// not finish (Join itself adds it; the supervisor retries).
		inc.wantRole.Store(roleManager)
		n.requestRoleChange()
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
	if changed && fileExists(n.nodeInfoPath()) {
		return n.saveNodeInfo(info)
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

// authorize decides, on every handshake in both directions, on every raft
// RPC received, and again for every open connection when membership or
// the roots change (watchAccess), whether a peer may use proto now. The
// certificate only says who the peer is; what it may do comes from the
// replicated state (docs/DESIGN-NOTES.md, "Who may speak"):
//
//   - node API: the node exists and is not removed; a demoted manager's
//     certificate counts as a worker's.
//   - raft: the node is a manager in the state and a server in raft's
//     latest configuration (fsm.State.RaftPeer).
//
// Workers hold no state and authorize their managers by certificate.
func (n *Node) authorize(proto string, id ca.Identity, leaf *x509.Certificate) error {
	inc := n.current()
	if inc == nil || inc.rn() == nil {
		return nil
	}
	err := n.authorizeManager(inc.rn(), proto, id, leaf)
	if err != nil {
		label := "api"
		if proto == transport.ProtoRaft {
			label = "raft"
		}
		peerRefusals.WithLabelValues(label).Inc()
	}
	return err
}

func (n *Node) authorizeManager(rn *raftNode, proto string, id ca.Identity, leaf *x509.Certificate) error {
	// A peer allowed once stays allowed until the access generation moves
	// (a node added, removed, given a role; a CA rotation's start or end):
	// the raft guard asks on every RPC, and must not wait for the FSM's
	// lock while an entry is applied. Refusals are never cached: a node
	// refused now (say, before raft's configuration names it) is asked
	// about again.
	key := authKey{proto: proto, node: id.NodeID, role: id.Role}
	if leaf != nil {
		key.serial = leaf.SerialNumber.String()
	}
	gen := rn.fsm.AccessGeneration()
	if g, ok := rn.authOK.Load(key); ok && g.(uint64) == gen {
		return nil
	}
	err := n.decideAccess(rn, proto, id, leaf)
	if err == nil {
		rn.authOK.Store(key, gen)
	}
	return err
}

// authKey names a peer's certificate on a protocol, for raftNode.authOK.
type authKey struct{ proto, node, role, serial string }

func (n *Node) decideAccess(rn *raftNode, proto string, id ca.Identity, leaf *x509.Certificate) error {
	if proto != transport.ProtoRaft {
		_, err := n.peerRole(id)
		if errors.Is(err, fsm.ErrNodeRemoved) {
			// Let it connect to be told, on every route, that it was
			// removed (api.ErrRemoved): it is served nothing else.
			return nil
		}
		return err
	}
	inConfig := false
	for _, s := range rn.servers() {
		if string(s.ID) == id.NodeID {
			inConfig = true
			break
		}
	}
	var issued time.Time
	if leaf != nil {
		issued = leaf.NotBefore.Add(ca.LeafBackdate)
	}
	appliedAt := rn.fsm.AppendedAt()
	var err error
	rn.fsm.Read(func(s *fsm.State, _ uint64) {
		err = s.RaftPeer(id.NodeID, id.Role, issued, inConfig, appliedAt, unknownPeerMargin, time.Now())
	})
	return err
}

// authorizeOpen is authorize for a connection already open: a removed
// node loses it too (a new one only tells it that it was removed).
func (n *Node) authorizeOpen(proto string, id ca.Identity, leaf *x509.Certificate) error {
	if err := n.authorize(proto, id, leaf); err != nil {
		return err
	}
	if proto == transport.ProtoRaft {
		return nil
	}
	_, err := n.peerRole(id)
	return err
}

// unknownPeerMargin is how much older than the newest entry this manager
// has applied a raft peer's certificate may be, for a node this manager
// does not know yet, before it is refused. It is zero: a certificate the
// cluster issued is newer than every entry before the one that records
// its node, by the clock of the leader that issued it and appended both;
// with a promotion (the node issues its own manager certificate) the
// clocks differ, and a skewed one can only make a manager that is behind
// refuse the promoted node until it catches up from another.
const unknownPeerMargin = 0

// peerRole returns the role the cluster gives a peer now, or why it is
// refused: removed, or not a member. A manager certificate of a node the
// cluster has since demoted counts as a worker's: the node may still
// renew onto a worker certificate, and may do nothing only managers may.
func (n *Node) peerRole(id ca.Identity) (string, error) {
	inc := n.current()
	if inc == nil || inc.rn() == nil {
		return id.Role, nil
	}
	var role string
	var err error
	inc.rn().fsm.Read(func(s *fsm.State, _ uint64) {
		role, err = s.PeerRole(id.NodeID, id.Role, time.Now())
	})
	return role, err
}

// watchAccess closes every open connection of a peer that is no longer
// allowed, at once, whenever an applied command may have changed who may
// do what (a node removed, demoted, added; a CA rotation's end) or this
// node's trusted roots change.
func (n *Node) watchAccess(ctx context.Context, inc *incarnation, rn *raftNode) {
	gen, creds := rn.fsm.AccessGeneration(), inc.creds.Load()
	log := n.logger.With("component", "transport")
	for {
		changed := rn.fsm.Changed()
		if g, c := rn.fsm.AccessGeneration(), inc.creds.Load(); g != gen || c != creds {
			gen, creds = g, c
			rn.authOK.Clear() // every entry is of an older generation now
			if closed := inc.conns.Revalidate(inc.creds, n.authorizeOpen, log); closed > 0 {
				accessClosed.Add(float64(closed))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-inc.credsChanged():
		}
	}
}

// peerOf reads the node API caller's identity from its certificate and
// authorizes it again for each request: a connection opened before a node
// was removed or demoted, or before its root was rotated away, serves it
// nothing after.
func (n *Node) peerOf(r *http.Request) (api.Peer, bool) {
	id, ok := transport.PeerIdentity(r.TLS)
	if !ok {
		return api.Peer{}, false
	}
	role, err := n.peerRole(id)
	if errors.Is(err, fsm.ErrNodeRemoved) {
		return api.Peer{NodeID: id.NodeID, Role: api.RoleRemoved}, true
	}
	if err != nil || !n.peerTrusted(r.TLS) {
		return api.Peer{}, false
	}
	return api.Peer{NodeID: id.NodeID, Role: role}, true
}

// setCreds replaces the node's TLS material (renewal, CA rotation) and
// tells watchAccess, which re-checks open connections against the roots.
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
