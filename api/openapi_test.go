package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/holdfast/holdfast/ca"
)

// specPath is the API's OpenAPI description, which these tests hold to
// the code.
const specPath = "../docs/openapi.yaml"

var (
	specOnce   sync.Once
	specDoc    *openapi3.T
	specRouter routers.Router
	specErr    error
)

// loadSpec loads and validates docs/openapi.yaml once per test binary.
func loadSpec(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		specDoc, specErr = loader.LoadFromFile(specPath)
		if specErr != nil {
			return
		}
		if specErr = specDoc.Validate(context.Background()); specErr != nil {
			return
		}
		specRouter, specErr = legacy.NewRouter(specDoc)
	})
	if specErr != nil {
		t.Fatalf("%s: %v", specPath, specErr)
	}
	return specDoc, specRouter
}

// TestOpenAPISpecIsValid: docs/openapi.yaml is a valid OpenAPI 3 document.
func TestOpenAPISpecIsValid(t *testing.T) {
	doc, _ := loadSpec(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: %q; want 3.x", doc.OpenAPI)
	}
}

// route is one "METHOD /path" of a server.
type route struct{ method, path string }

func (r route) String() string { return r.method + " " + r.path }

// serverOf names the server a path belongs to, as the spec tags it.
func serverOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/"):
		return "control"
	case strings.HasPrefix(path, "/internal/"):
		return "node"
	case path == "/join" || strings.HasPrefix(path, "/join/"):
		return "join"
	}
	return "unknown"
}

var patternRE = regexp.MustCompile(`^([A-Z]+) (/\S*)$`)

// codeRoutes returns every route package api registers: each call of
// HandleFunc, Handle or handle (NewNodeHandler's) whose first argument is
// a "METHOD /path" literal, in the package's non-test files.
func codeRoutes(t *testing.T) []route {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var out []route
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			case *ast.Ident:
				fn = f.Name
			}
			if fn != "HandleFunc" && fn != "Handle" && fn != "handle" {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			m := patternRE.FindStringSubmatch(s)
			if m == nil {
				t.Errorf("%s: pattern %q has no method: every route names one", fset.Position(lit.Pos()), s)
				return true
			}
			out = append(out, route{m[1], m[2]})
			return true
		})
	}
	return out
}

// specRoutes returns every operation of the spec, with its tag.
func specRoutes(doc *openapi3.T) map[route][]string {
	out := map[route][]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out[route{method, path}] = op.Tags
		}
	}
	return out
}

// TestOpenAPISpecCoversEveryRoute: every route the code registers has an
// operation in docs/openapi.yaml, tagged with its server, and every
// operation there is a route the server's handler dispatches.
func TestOpenAPISpecCoversEveryRoute(t *testing.T) {
	doc, _ := loadSpec(t)
	inSpec := specRoutes(doc)
	inCode := codeRoutes(t)
	if len(inCode) < 40 {
		t.Fatalf("found only %d routes in package api; the route scan is broken", len(inCode))
	}
	for _, r := range inCode {
		tags, ok := inSpec[r]
		if !ok {
			t.Errorf("route %s is served but not described in %s", r, specPath)
			continue
		}
		if want := serverOf(r.path); !slices.Equal(tags, []string{want}) {
			t.Errorf("%s: tagged %v in %s; want [%s]", r, tags, specPath, want)
		}
	}
	var missing []string
	for r := range inSpec {
		if !slices.Contains(inCode, r) {
			missing = append(missing, r.String())
		}
	}
	sort.Strings(missing)
	for _, r := range missing {
		t.Errorf("%s describes %s, which no handler registers", specPath, r)
	}

	// And each operation reaches a route of its server's real handler:
	// the handler panics on its nil backend, or answers something that is
	// not the no-route 404 or the 405 of Routes.
	manager := func(*http.Request) (Peer, bool) { return Peer{NodeID: "m1", Role: ca.RoleManager}, true }
	handlers := map[string]http.Handler{
		"control": NewControlHandler(nil),
		"node":    NewNodeHandler(nil, manager),
		"join":    NewJoinHandler(nil),
	}
	params := regexp.MustCompile(`\{[^}]+\}`)
	for r := range inSpec {
		h := handlers[serverOf(r.path)]
		if h == nil {
			t.Errorf("%s: path belongs to no server (/v1/, /internal/, /join)", r)
			continue
		}
		path := params.ReplaceAllString(r.path, "x")
		if !dispatches(h, httptest.NewRequest(r.method, path, strings.NewReader("{}"))) {
			t.Errorf("%s %s: the %s handler has no such route", r.method, path, serverOf(r.path))
		}
	}
}

// dispatches reports whether h routes req to a route's handler.
func dispatches(h http.Handler, req *http.Request) (reached bool) {
	defer func() {
		if recover() != nil {
			reached = true // a route ran and called its (nil) backend
		}
	}()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var eb errorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &eb)
	switch {
	case rec.Code == http.StatusMethodNotAllowed:
		return false
	case rec.Code == http.StatusNotFound && strings.HasPrefix(eb.Error, "no route "):
		return false
	}
	return true
}

// errorResponseRE names the spec's error responses: one a status.
var errorResponseRE = regexp.MustCompile(`^Error(\d{3})$`)

// TestOpenAPISpecListsEveryCode: the spec's error responses Error400 …
// Error503 list every code of the codes table under its status, and no
// code that does not exist or has another status.
func TestOpenAPISpecListsEveryCode(t *testing.T) {
	doc, _ := loadSpec(t)
	listed := map[Code]int{}
	for name, ref := range doc.Components.Responses {
		m := errorResponseRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		status, _ := strconv.Atoi(m[1])
		for _, c := range responseCodes(t, name, ref.Value) {
			if prev, dup := listed[c]; dup {
				t.Errorf("code %q is listed under %d and %d", c, prev, status)
			}
			listed[c] = status
			if _, ok := codes[c]; !ok {
				t.Errorf("%s lists code %q, which does not exist", name, c)
			} else if c.Status() != status {
				t.Errorf("%s lists code %q, whose status is %d", name, c, c.Status())
			}
		}
	}
	for _, c := range Codes() {
		if _, ok := listed[c]; !ok {
			t.Errorf("%s does not list code %q (status %d) in a response Error%d", specPath, c, c.Status(), c.Status())
		}
	}
}

// responseCodes returns the code enum of an error response's schema.
func responseCodes(t *testing.T, name string, resp *openapi3.Response) []Code {
	mt := resp.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		t.Errorf("%s: no application/json schema", name)
		return nil
	}
	var out []Code
	var walk func(s *openapi3.Schema)
	walk = func(s *openapi3.Schema) {
		if p := s.Properties["code"]; p != nil && p.Value != nil {
			for _, v := range p.Value.Enum {
				out = append(out, Code(fmt.Sprint(v)))
			}
		}
		for _, sub := range s.AllOf {
			walk(sub.Value)
		}
	}
	walk(mt.Schema.Value)
	if len(out) == 0 {
		t.Errorf("%s: its schema lists no code", name)
	}
	return out
}

// specChecked wraps h so that every answer is checked against the spec:
// its status must be one the operation lists and its body must match that
// response's schema. A request the handler accepted (2xx) must be one the
// spec accepts too. An answer for a path or method the spec lacks must be
// the spec's 404 or 405 error. Streaming routes (watch) must not be used
// through it: it records the whole answer first.
func specChecked(t testing.TB, h http.Handler) http.Handler {
	doc, router := loadSpec(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		resp := rec.Result()
		respBody := rec.Body.Bytes()
		what := r.Method + " " + r.URL.String()

		rt, params, err := router.FindRoute(r)
		if err != nil {
			checkNoRoute(t, doc, what, resp, respBody)
		} else {
			in := &openapi3filter.RequestValidationInput{
				Request:    r.Clone(r.Context()),
				PathParams: params,
				Route:      rt,
				Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			}
			in.Request.Body = io.NopCloser(bytes.NewReader(body))
			// The server reads a body whatever its Content-Type says; a
			// request without one is checked as the route's own type.
			if rb := rt.Operation.RequestBody; rb != nil && in.Request.Header.Get("Content-Type") == "" && len(rb.Value.Content) == 1 {
				for ct := range rb.Value.Content {
					in.Request.Header.Set("Content-Type", ct)
				}
			}
			if resp.StatusCode/100 == 2 {
				if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
					t.Errorf("%s: the server accepted a request the spec refuses: %v", what, err)
				}
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: in,
				Status:                 resp.StatusCode,
				Header:                 resp.Header,
				Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			}
			out.SetBodyBytes(respBody)
			if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
				t.Errorf("%s: answer %d %s does not match %s: %v", what, resp.StatusCode, bytes.TrimSpace(respBody), specPath, err)
			}
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(respBody)
	})
}

// checkNoRoute checks the answer to a request the spec has no operation
// for: Error404 or Error405 (with Allow).
func checkNoRoute(t testing.TB, doc *openapi3.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	name := fmt.Sprintf("Error%d", resp.StatusCode)
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("%s: not in %s, yet answered %d %s", what, specPath, resp.StatusCode, bytes.TrimSpace(body))
		return
	}
	if resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
		t.Errorf("%s: 405 without Allow", what)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s: %d answer %q is not JSON", what, resp.StatusCode, body)
		return
	}
	schema := doc.Components.Responses[name].Value.Content.Get("application/json").Schema.Value
	if err := schema.VisitJSON(v); err != nil {
		t.Errorf("%s: answer %d %s does not match %s: %v", what, resp.StatusCode, bytes.TrimSpace(body), name, err)
	}
}

// memSecrets is a SecretsBackend over a map, answering as the manager
// does (codes, an empty list as []), for checking answers against the
// spec.
type memSecrets struct {
	mu      sync.Mutex
	secrets map[string]*SecretMeta
}

func (m *memSecrets) find(ref string) (*SecretMeta, error) {
	for _, s := range m.secrets {
		if s.Name == ref || s.ID == ref {
			return s, nil
		}
	}
	return nil, Errorf(CodeNotFound, "secret %s not found", ref)
}

func (m *memSecrets) CreateSecret(_ context.Context, req SecretCreateRequest) (*SecretID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.Name == "" || len(req.Data) == 0 {
		return nil, Errorf(CodeInvalidArgument, "a secret needs a name and data")
	}
	if _, err := m.find(req.Name); err == nil {
		return nil, Errorf(CodeAlreadyExists, "secret %s exists", req.Name)
	}
	id := fmt.Sprintf("s%025d", len(m.secrets)+1)
	now := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	m.secrets[id] = &SecretMeta{ID: id, Name: req.Name, Labels: req.Labels, Digest: "sha256:00", Size: len(req.Data), CreatedAt: now, UpdatedAt: now, Grants: req.Grants}
	return &SecretID{ID: id}, nil
}

func (m *memSecrets) Secrets(context.Context) ([]SecretMeta, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []SecretMeta{}
	for _, s := range m.secrets {
		out = append(out, *s)
	}
	return out, nil
}

func (m *memSecrets) Secret(_ context.Context, ref string) (*SecretMeta, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.find(ref)
	if err != nil {
		return nil, err
	}
	c := *s
	return &c, nil
}

func (m *memSecrets) RemoveSecret(_ context.Context, ref string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.find(ref)
	if err == nil {
		delete(m.secrets, s.ID)
	}
	return err
}

func (m *memSecrets) SetSecretLabels(_ context.Context, ref string, labels map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.find(ref)
	if err == nil {
		s.Labels = labels
	}
	return err
}

func (m *memSecrets) GrantSecret(_ context.Context, ref, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.find(ref)
	if err == nil {
		s.Grants = append(s.Grants, node)
	}
	return err
}

func (m *memSecrets) RevokeSecret(_ context.Context, ref, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.find(ref)
	if err == nil {
		s.Grants = slices.DeleteFunc(s.Grants, func(g string) bool { return g == node })
	}
	return err
}

// statusOnly is a ClusterBackend that answers Status only.
type statusOnly struct {
	ClusterBackend
	st *Status
}

func (s statusOnly) Status(context.Context) (*Status, error) { return s.st, nil }

// TestAnswersMatchTheSpec drives the secret, status and health routes of
// a control API through the Go client and checks every request and answer
// against docs/openapi.yaml (specChecked): success and error bodies, the
// statuses, and the node states a status and a health check may report,
// removed and catching-up included.
func TestAnswersMatchTheSpec(t *testing.T) {
	ctx := context.Background()
	st := &Status{}
	health := &Health{}
	h := NewControlMux(ControlBackends{
		Cluster: statusOnly{st: st}, Secrets: &memSecrets{secrets: map[string]*SecretMeta{}},
		Health: fixedHealthPtr{health},
	})
	srv := httptest.NewServer(specChecked(t, h))
	defer srv.Close()
	c := NewClient(srv.Client(), srv.URL)

	// Secrets: every route, and the errors they answer.
	if l, err := c.Secrets(ctx); err != nil || len(l) != 0 {
		t.Fatalf("empty list: %v, %v", l, err)
	}
	id, err := c.CreateSecret(ctx, SecretCreateRequest{Name: "db", Data: []byte("s3cret"), Labels: map[string]string{"tier": "prod"}, Grants: []string{"n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSecret(ctx, SecretCreateRequest{Name: "db", Data: []byte("x")}); CodeOf(err) != CodeAlreadyExists {
		t.Errorf("duplicate create: %v", err)
	}
	if _, err := c.CreateSecret(ctx, SecretCreateRequest{Name: "empty"}); CodeOf(err) != CodeInvalidArgument {
		t.Errorf("create without data: %v", err)
	}
	if err := c.GrantSecret(ctx, "db", "self"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSecretLabels(ctx, id.ID, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Secret(ctx, "db"); err != nil || len(m.Grants) != 2 {
		t.Fatalf("inspect: %+v, %v", m, err)
	}
	if l, err := c.Secrets(ctx); err != nil || len(l) != 1 {
		t.Fatalf("list: %v, %v", l, err)
	}
	if err := c.RevokeSecret(ctx, "db", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveSecret(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Secret(ctx, "db"); CodeOf(err) != CodeNotFound {
		t.Errorf("inspect after rm: %v", err)
	}
	if err := c.Do(ctx, "POST", "/v1/secrets", map[string]any{"name": "db", "data": "not base64!"}, nil); CodeOf(err) != CodeInvalidArgument {
		t.Errorf("bad data: %v", err)
	}

	// Status, in each state a node reports.
	for _, s := range []Status{
		{State: StateUninitialized},
		{NodeID: "m1", ClusterID: "c", Role: ca.RoleManager, State: StateLocked, Addr: "10.0.0.1:4242", Autolock: true},
		{NodeID: "m1", ClusterID: "c", Role: ca.RoleManager, State: StateReady, Addr: "10.0.0.1:4242", IsLeader: true,
			Leader: Leader{NodeID: "m1", Addr: "10.0.0.1:4242"}, Raft: RaftStatus{Term: 2, LastIndex: 9, CommitIndex: 9, AppliedIndex: 9},
			Managers: []ManagerStatus{{NodeID: "m1", Addr: "10.0.0.1:4242", Leader: true, Voter: true, Reachable: true}},
			Gossip:   &GossipStatus{Addr: "10.0.0.1:4243", Members: 3, PrimaryLamport: 4}, Level: 3, Commands: []string{"secret-create/1"}, ClusterVersion: 3},
		{NodeID: "m2", Role: ca.RoleManager, State: StateNeedsUpgrade, NeedsUpgrade: &NeedsUpgrade{Index: 12, Command: "x", Version: 2}},
		{NodeID: "w1", ClusterID: "c", Role: ca.RoleWorker, State: "removed"},
		{NodeID: "m3", ClusterID: "c", Role: ca.RoleManager, State: "catching-up", Raft: RaftStatus{CommitIndex: 9, AppliedIndex: 3}},
	} {
		*st = s
		if got, err := c.Status(ctx); err != nil || got.State != s.State {
			t.Errorf("status %q: %+v, %v", s.State, got, err)
		}
	}

	// Health, in each state, 200 or 503.
	for _, s := range []string{HealthReady, HealthLocked, HealthNoLeader, HealthUninitialized, HealthNeedsUpgrade, "removed", "catching-up"} {
		*health = Health{Status: s, NodeID: "n1", Role: ca.RoleManager}
		if got, err := c.Health(ctx); err != nil || got.Status != s {
			t.Errorf("health %q: %+v, %v", s, got, err)
		}
	}
}

// clusterParts answers the cluster, key and CA reads with filled-in
// values, for TestMoreAnswersMatchTheSpec.
type clusterParts struct {
	ClusterBackend
	CABackend
	at time.Time
}

func (c clusterParts) Nodes(context.Context) ([]Node, error) {
	return []Node{
		{ID: "m1", Role: ca.RoleManager, Addr: "10.0.0.1:4242", Status: NodeReady, Leader: true, Voter: true, CertExpiresAt: c.at, CreatedAt: c.at, GossipAddr: "10.0.0.1:4243", Level: 4, Commands: []string{"batch/1"}},
		{ID: "w1", Role: ca.RoleWorker, Addr: "10.0.0.9:4242", Status: NodeDown, CertExpiresAt: c.at, CreatedAt: c.at},
	}, nil
}

func (c clusterParts) Node(_ context.Context, id string) (*Node, error) {
	if id != "m1" {
		return nil, Errorf(CodeNotFound, "node %s not found", id)
	}
	return &Node{ID: "m1", Role: ca.RoleManager, Addr: "10.0.0.1:4242", Status: NodeUnknown, CertExpiresAt: c.at, CreatedAt: c.at}, nil
}

func (c clusterParts) JoinToken(_ context.Context, role ca.Role) (*JoinToken, error) {
	if !role.Valid() {
		return nil, Errorf(CodeInvalidArgument, "role %q: want worker or manager", role)
	}
	return &JoinToken{Role: role, Token: "HFTKN-1-abc-def"}, nil
}

func (c clusterParts) UnlockKey(context.Context) (*UnlockKeyResponse, error) {
	return &UnlockKeyResponse{UnlockKey: "HFKEY-1-x"}, nil
}

func (c clusterParts) RotateUnlockKey(_ context.Context, req RotateUnlockKeyRequest) (*UnlockKeyResponse, error) {
	return &UnlockKeyResponse{UnlockKey: "HFKEY-1-y", Shares: []string{"HFSHR-1-a", "HFSHR-1-b", "HFSHR-1-c"}, Threshold: req.Threshold}, nil
}

func (c clusterParts) CA(context.Context) (*CAInfo, error) {
	return &CAInfo{RootPEM: "-----BEGIN CERTIFICATE-----\n", Digest: "abc"}, nil
}

func (c clusterParts) CARotation(context.Context) (*CARotation, error) {
	return &CARotation{ID: "r1", State: CARotationRotating, OldDigest: "a", NewDigest: "b", Nodes: 2, Converted: 1,
		Waiting: []CAWaitingFor{{ID: "w1", Role: ca.RoleWorker, Addr: "10.0.0.9:4242", Status: NodeDown}}, StartedAt: c.at}, nil
}

func (c clusterParts) RotateCA(context.Context, CARotateRequest) (*CARotation, error) {
	return nil, Errorf(CodeConflict, "a CA rotation is in progress")
}

type keyParts struct{ at time.Time }

func (k keyParts) Keys(context.Context) ([]KeyInfo, error) {
	return []KeyInfo{{Subsystem: "ipsec", KeyID: "k1", Lamport: 3, CreatedAt: k.at, Primary: true}}, nil
}

func (k keyParts) WatchKeyring(_ context.Context, sub string, _ bool, send func(*Keyring) error) error {
	if sub == "gossip" {
		return Errorf(CodePermissionDenied, "the gossip keyring is never served")
	}
	return send(&Keyring{Subsystem: sub, Keys: []Key{{KeyID: "k1", Lamport: 3, CreatedAt: k.at, Primary: true, Key: make([]byte, 32)}}})
}

// TestMoreAnswersMatchTheSpec checks the node, join-token, unlock-key,
// key and CA routes' answers against docs/openapi.yaml, as
// TestAnswersMatchTheSpec does for secrets, status and health.
func TestMoreAnswersMatchTheSpec(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	cp := clusterParts{at: at}
	srv := httptest.NewServer(specChecked(t, NewControlMux(ControlBackends{Cluster: cp, CA: cp, Keys: keyParts{at}})))
	defer srv.Close()
	c := NewClient(srv.Client(), srv.URL)
	if n, err := c.Nodes(ctx); err != nil || len(n) != 2 {
		t.Errorf("nodes: %v, %v", n, err)
	}
	if _, err := c.Node(ctx, "m1"); err != nil {
		t.Error(err)
	}
	if _, err := c.Node(ctx, "nope"); CodeOf(err) != CodeNotFound {
		t.Errorf("node nope: %v", err)
	}
	if _, err := c.JoinToken(ctx, ca.RoleWorker); err != nil {
		t.Error(err)
	}
	if _, err := c.JoinToken(ctx, "boss"); CodeOf(err) != CodeInvalidArgument {
		t.Errorf("join token boss: %v", err)
	}
	if _, err := c.UnlockKey(ctx); err != nil {
		t.Error(err)
	}
	if _, err := c.RotateUnlockKey(ctx, RotateUnlockKeyRequest{Shares: 3, Threshold: 2}); err != nil {
		t.Error(err)
	}
	if _, err := c.Keys(ctx); err != nil {
		t.Error(err)
	}
	if _, err := c.Keyring(ctx, "ipsec"); err != nil {
		t.Error(err)
	}
	if _, err := c.Keyring(ctx, "gossip"); CodeOf(err) != CodePermissionDenied {
		t.Errorf("gossip keyring: %v", err)
	}
	if _, err := c.CA(ctx); err != nil {
		t.Error(err)
	}
	if _, err := c.CARotation(ctx); err != nil {
		t.Error(err)
	}
	if _, err := c.RotateCA(ctx, CARotateRequest{}); CodeOf(err) != CodeConflict {
		t.Errorf("rotate during a rotation: %v", err)
	}
}

type fixedHealthPtr struct{ h *Health }

func (f fixedHealthPtr) Health(context.Context) *Health { h := *f.h; return &h }
