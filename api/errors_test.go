package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/ca"
)

// allSentinels are the sentinel errors, each with a code of its own.
var allSentinels = []*Error{ErrLocked, ErrNotManager, ErrRemoved, ErrUninitialized, ErrNotLeader, ErrNoLeader, ErrNeedsUpgrade}

// rawServer answers every request with status and body, as a server from
// before error codes (or something that is not holdfast) does.
func rawServer(t *testing.T, status int, contentType, body string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return NewClient(srv.Client(), srv.URL)
}

// TestCodeTable: every code has the status the HTTP API answered before
// codes existed, and is one of the documented ones.
func TestCodeTable(t *testing.T) {
	want := map[Code]int{
		"invalid_argument": 400, "unauthenticated": 403, "permission_denied": 403, "removed": 403,
		"not_found": 404, "method_not_allowed": 405, "already_exists": 409, "conflict": 409,
		"too_large": 413, "not_leader": 421, "locked": 423, "internal": 500, "bad_gateway": 502,
		"unavailable": 503, "no_leader": 503, "not_manager": 503, "uninitialized": 503,
		"needs_upgrade": 503, "rate_limited": 503, "clock_skew": 503,
		"too_many_requests": 429,
	}
	got := Codes()
	if len(got) != len(want) {
		t.Errorf("got %d codes %v; want %d", len(got), got, len(want))
	}
	for _, c := range got {
		if s, ok := want[c]; !ok || c.Status() != s {
			t.Errorf("code %q: status %d; want %d (documented: %v)", c, c.Status(), s, ok)
		}
		if !regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`).MatchString(string(c)) {
			t.Errorf("code %q is not snake_case", c)
		}
	}
	if s := Code("from_a_newer_build").Status(); s != 500 {
		t.Errorf("unknown code: status %d; want 500", s)
	}
	// Errorf and Wrap take a Code: an HTTP status does not compile there.
	for _, fn := range []any{Errorf, Wrap} {
		if in := reflect.TypeOf(fn).In(0); in != reflect.TypeOf(Code("")) {
			t.Errorf("%T takes %v first; want Code", fn, in)
		}
	}
}

// TestSentinelsHaveTheirOwnCode: errors.Is tells the sentinels apart by
// code, and matches an error of the same code made elsewhere.
func TestSentinelsHaveTheirOwnCode(t *testing.T) {
	seen := map[Code]bool{}
	for _, s := range allSentinels {
		if seen[s.Code] {
			t.Errorf("two sentinels have code %q", s.Code)
		}
		seen[s.Code] = true
		if _, ok := codes[s.Code]; !ok || s.Status != s.Code.Status() {
			t.Errorf("sentinel %q: code %q, status %d", s.Message, s.Code, s.Status)
		}
		if e := Errorf(s.Code, "another message"); !errors.Is(e, s) {
			t.Errorf("an error with code %q is not errors.Is its sentinel", s.Code)
		}
	}
	if errors.Is(Errorf(CodeConflict, "x"), Errorf(CodeConflict, "x")) {
		t.Error("two errors that are not sentinels match by code")
	}
}

// TestEveryCodeRoundTrips: the server writes {"error", "code"} with the
// code's status; the client returns an *Error with the same code, status
// and message, errors.Is its sentinel (and no other) where it has one.
func TestEveryCodeRoundTrips(t *testing.T) {
	for _, code := range Codes() {
		t.Run(string(code), func(t *testing.T) {
			sent := Errorf(code, "what went wrong, for %s", code)
			if s := sentinels[code]; s != nil {
				sent = s
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeError(w, sent) }))
			defer srv.Close()

			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != code.Status() || len(body) != 2 || body["error"] != sent.Message || body["code"] != string(code) {
				t.Fatalf("response: %d %v (%v); want %d {error, code: %q}", resp.StatusCode, body, err, code.Status(), code)
			}

			err = NewClient(srv.Client(), srv.URL).Do(context.Background(), "GET", "/", nil, nil)
			var ae *Error
			if !errors.As(err, &ae) || ae.Code != code || ae.Status != code.Status() || ae.Message != sent.Message {
				t.Fatalf("client got %#v; want code %q, status %d, message %q", err, code, code.Status(), sent.Message)
			}
			for _, s := range allSentinels {
				if got, want := errors.Is(err, s), s.Code == code; got != want {
					t.Errorf("errors.Is(err, sentinel %q) = %v; want %v", s.Code, got, want)
				}
			}
		})
	}
}

// TestWrappedErrorKeepsItsCause: Wrap gives a code and keeps the cause
// for errors.Is on the server side; a plain error is internal.
func TestWrappedErrorKeepsItsCause(t *testing.T) {
	cause := errors.New("name taken")
	err := Wrap(CodeAlreadyExists, cause)
	if !errors.Is(err, cause) || CodeOf(err) != CodeAlreadyExists || StatusOf(err) != http.StatusConflict {
		t.Errorf("got %v (code %q, status %d)", err, CodeOf(err), StatusOf(err))
	}
	if plain := errors.New("disk on fire"); CodeOf(plain) != CodeInternal || StatusOf(plain) != 500 {
		t.Errorf("plain error: code %q, status %d; want internal, 500", CodeOf(plain), StatusOf(plain))
	}
	// A code from a newer build passes through a node that does not know
	// it, with the status it came with.
	newer := &Error{Code: "from_a_newer_build", Status: http.StatusTeapot, Message: "?"}
	if StatusOf(newer) != http.StatusTeapot || CodeOf(newer) != "from_a_newer_build" {
		t.Errorf("unknown code: status %d, code %q", StatusOf(newer), CodeOf(newer))
	}
}

// TestOlderServerWithoutCodes: an answer without a code (a server from
// before codes, or not holdfast at all) is read from its status, and the
// sentinels from their exact message, in legacyCode.
func TestOlderServerWithoutCodes(t *testing.T) {
	old := func(msg string) string { b, _ := json.Marshal(map[string]string{"error": msg}); return string(b) }
	for _, tc := range []struct {
		status   int
		ct, body string
		want     Code
		sentinel error
	}{
		{423, "application/json", old(ErrLocked.Message), CodeLocked, ErrLocked},
		{403, "application/json", old(ErrRemoved.Message), CodeRemoved, ErrRemoved},
		{503, "application/json", old(ErrNotManager.Message), CodeNotManager, ErrNotManager},
		{503, "application/json", old(ErrUninitialized.Message), CodeUninitialized, ErrUninitialized},
		{503, "application/json", old(ErrNoLeader.Message), CodeNoLeader, ErrNoLeader},
		{503, "application/json", old("this manager serves no reads: entry 9 needs upgrade"), CodeNeedsUpgrade, ErrNeedsUpgrade},
		{421, "application/json", old("the leader is not ready for reads yet"), CodeNotLeader, ErrNotLeader},
		{503, "application/json", old("write timed out"), CodeUnavailable, nil},
		{403, "application/json", old("invalid join token"), CodePermissionDenied, nil},
		{400, "application/json", old("bad"), CodeInvalidArgument, nil},
		{404, "application/json", old("no route GET /v1/x"), CodeNotFound, nil},
		{405, "text/plain", "Method Not Allowed\n", CodeMethodNotAllowed, nil},
		{409, "application/json", old("name taken"), CodeConflict, nil},
		{413, "application/json", old("too big"), CodeTooLarge, nil},
		{502, "text/html", "<html>proxy error</html>", CodeBadGateway, nil},
		{500, "application/json", old("boom"), CodeInternal, nil},
		{418, "text/plain", "teapot", CodeInvalidArgument, nil},
	} {
		err := rawServer(t, tc.status, tc.ct, tc.body).Do(context.Background(), "GET", "/v1/x", nil, nil)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != tc.want || ae.Status != tc.status {
			t.Errorf("%d %s: got %#v; want code %q", tc.status, tc.body, err, tc.want)
			continue
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Errorf("%d %s: not errors.Is its sentinel", tc.status, tc.body)
		}
		if !strings.HasPrefix(tc.ct, "application/json") && ae.Message != "GET /v1/x: "+strconv.Itoa(tc.status)+" "+http.StatusText(tc.status) {
			t.Errorf("%d: message %q; want the status line", tc.status, ae.Message)
		}
	}
}

// TestBatchResultsCarryCodes: each forwarded command's error comes back
// with its code (a sentinel matches), and an old leader's results
// without codes are read from their status.
func TestBatchResultsCarryCodes(t *testing.T) {
	b := &batchNode{res: []error{ErrNoLeader, Errorf(CodeAlreadyExists, "name taken")}}
	srv := httptest.NewServer(NewNodeHandler(b, func(*http.Request) (Peer, bool) { return Peer{NodeID: "m1", Role: ca.RoleManager}, true }))
	defer srv.Close()
	errs, err := NewClient(srv.Client(), srv.URL).ApplyBatchForwarded(context.Background(), [][]byte{{1}, {2}})
	if err != nil || !errors.Is(errs[0], ErrNoLeader) || CodeOf(errs[1]) != CodeAlreadyExists {
		t.Fatalf("got %v, %v; want no_leader, already_exists", errs, err)
	}

	oldLeader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"results": []map[string]any{{"status": 200}, {"status": 423, "error": ErrLocked.Message}}})
	}))
	defer oldLeader.Close()
	errs, err = NewClient(oldLeader.Client(), oldLeader.URL).ApplyBatchForwarded(context.Background(), [][]byte{{1}, {2}})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrLocked) {
		t.Fatalf("old leader: got %v, %v; want nil, locked", errs, err)
	}
}

// TestWrongMethodIs405: a route that exists answers another method with
// 405, an Allow header and code method_not_allowed, on all three
// servers; a path no route has is 404 not_found.
func TestWrongMethodIs405(t *testing.T) {
	peer := func(*http.Request) (Peer, bool) { return Peer{NodeID: "m1", Role: ca.RoleManager}, true }
	for _, tc := range []struct {
		name         string
		h            http.Handler
		method, path string
		status       int
		allow        string
	}{
		{"control: POST status", NewControlHandler(nil), "POST", "/v1/status", 405, "GET, HEAD"},
		{"control: PUT secrets", NewControlHandler(nil), "PUT", "/v1/secrets", 405, "GET, HEAD, POST"},
		{"control: POST a secret", NewControlHandler(nil), "POST", "/v1/secrets/db", 405, "DELETE, GET, HEAD, PATCH"},
		{"control: no such path", NewControlHandler(nil), "GET", "/v1/nope", 404, ""},
		{"node: GET apply", NewNodeHandler(&fakeNode{}, peer), "GET", "/internal/v1/apply", 405, "POST"},
		{"node: no such path", NewNodeHandler(&fakeNode{}, peer), "GET", "/internal/v1/nope", 404, ""},
		{"join: GET join", NewJoinHandler(nil), "GET", "/join", 405, "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(specChecked(t, tc.h))
			defer srv.Close()
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body errorBody
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			want := CodeNotFound
			if tc.status == 405 {
				want = CodeMethodNotAllowed
			}
			if err != nil || resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || body.Code != want || body.Error == "" {
				t.Fatalf("got %d, Allow %q, %+v (%v); want %d, Allow %q, code %q", resp.StatusCode, resp.Header.Get("Allow"), body, err, tc.status, tc.allow, want)
			}
			err = NewClient(srv.Client(), srv.URL).Do(context.Background(), tc.method, tc.path, nil, nil)
			if CodeOf(err) != want {
				t.Errorf("client: %v (code %q); want %q", err, CodeOf(err), want)
			}
		})
	}
}

// goNames are what a decoding error must never show: Go's own words and
// the names of Go types.
var goNames = regexp.MustCompile(`Go (struct|value)|json:|uint8|\[\]|map\[|\bint\b|\bstring\b.*type|api\.|[A-Z][a-z]+(Create|Labels|Rotate|Unlock|Grant)?Request`)

// TestDecodeErrorsSayWhatWasWrong: a body that does not fit its request
// is refused with invalid_argument and a message that names the field
// and what it takes, never a Go type or the value sent.
func TestDecodeErrorsSayWhatWasWrong(t *testing.T) {
	for _, tc := range []struct {
		v          any
		body, want string
	}{
		{new(SecretCreateRequest), `{"name":"db","data":"SECRET value!"}`, `field "data": expected base64 bytes`},
		{new(SecretCreateRequest), `{"name":"db","data":5}`, `field "data": expected base64 bytes, got a number`},
		{new(SecretCreateRequest), `{"name":5}`, `field "name": expected a string, got a number`},
		{new(SecretCreateRequest), `{"labels":{"tier":1}}`, `field "labels.tier": expected a string, got a number`},
		{new(SecretCreateRequest), `{"grants":"n1"}`, `field "grants": expected a list, got a string`},
		{new(SecretCreateRequest), `{"grants":[7]}`, `field "grants.0": expected a string, got a number`},
		{new(SecretCreateRequest), `{"nmae":"db"}`, `unknown field "nmae"`},
		{new(SecretCreateRequest), `[]`, `expected an object, got a list`},
		{new(SecretCreateRequest), `{"name":"db"} {}`, `malformed JSON at byte `},
		{new(UpdateRequest), `{"autolock":"yes"}`, `field "autolock": expected true or false, got a string`},
		{new(RotateUnlockKeyRequest), `{"threshold":1.5}`, `field "threshold": expected a whole number`},
	} {
		err := decodeBody([]byte(tc.body), tc.v)
		if CodeOf(err) != CodeInvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v (code %q); want invalid_argument, %q", tc.body, err, CodeOf(err), tc.want)
			continue
		}
		if m := goNames.FindString(err.Error()); m != "" {
			t.Errorf("%s: %q shows Go's words %q", tc.body, err, m)
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "1.5") {
			t.Errorf("%s: %q repeats the value", tc.body, err)
		}
	}
}

// FuzzReadError: any error response a peer sends — a known or unknown
// code, no code, a body that is not JSON — becomes an *Error that keeps
// the status, has a message, and matches a sentinel only if it carries
// that sentinel's code.
func FuzzReadError(f *testing.F) {
	f.Add(423, []byte(`{"error":"this node is locked","code":"locked"}`))
	f.Add(503, []byte(`{"error":"no leader"}`))
	f.Add(418, []byte(`{"error":"x","code":"from_a_newer_build"}`))
	f.Add(500, []byte(`not json`))
	f.Add(200, []byte(`{"code":"locked"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := readError(status, "status line", "what", body)
		if e == nil || e.Status != status || e.Message == "" {
			t.Fatalf("readError(%d, %q) = %+v", status, body, e)
		}
		for _, s := range allSentinels {
			if errors.Is(e, s) != (e.Code == s.Code) {
				t.Fatalf("readError(%d, %q) code %q: errors.Is(%q) = %v", status, body, e.Code, s.Code, errors.Is(e, s))
			}
		}
	})
}
