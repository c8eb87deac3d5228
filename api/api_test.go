package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeNode records which node API calls reached the backend.
type fakeNode struct {
	NodeBackend // unimplemented methods panic: the test never reaches them
	calls       []string
}

func (f *fakeNode) ApplyForwarded(_ context.Context, from Peer, cmd []byte) error {
	f.calls = append(f.calls, "apply:"+from.NodeID)
	return nil
}

func (f *fakeNode) Self(_ context.Context, from Peer, idx uint64) (*SelfView, error) {
	f.calls = append(f.calls, "self:"+from.NodeID)
	return &SelfView{Index: idx}, nil
}

func (f *fakeNode) ReadIndex(_ context.Context, from Peer) (*ReadIndex, error) {
	f.calls = append(f.calls, "read-index:"+from.NodeID)
	return &ReadIndex{Index: 7}, nil
}

func (f *fakeNode) CAConverted(_ context.Context, from Peer, leaf *x509.Certificate) error {
	f.calls = append(f.calls, "ca-converted:"+from.NodeID)
	if leaf != nil {
		return Errorf(CodeInternal, "a request without TLS came with a certificate")
	}
	return nil
}

func TestNodeHandlerEnforcesRoles(t *testing.T) {
	tests := []struct {
		name       string
		peer       *Peer
		method     string
		path       string
		wantStatus int
		wantCall   bool
	}{
		{"manager applies", &Peer{NodeID: "m1", Role: "manager"}, "POST", "/internal/v1/apply", 200, true},
		{"worker cannot apply", &Peer{NodeID: "w1", Role: "worker"}, "POST", "/internal/v1/apply", 403, false},
		{"worker cannot read-index", &Peer{NodeID: "w1", Role: "worker"}, "GET", "/internal/v1/read-index", 403, false},
		{"worker cannot add a voter", &Peer{NodeID: "w1", Role: "worker"}, "POST", "/internal/v1/raft/add-voter", 403, false},
		{"worker cannot remove nodes", &Peer{NodeID: "w1", Role: "worker"}, "DELETE", "/internal/v1/nodes/x", 403, false},
		{"worker reads its own record", &Peer{NodeID: "w1", Role: "worker"}, "GET", "/internal/v1/self?index=3", 200, true},
		{"bad index", &Peer{NodeID: "w1", Role: "worker"}, "GET", "/internal/v1/self?index=x", 400, false},
		{"worker reports its new-root certificate", &Peer{NodeID: "w1", Role: "worker"}, "POST", "/internal/v1/ca/converted", 200, true},
		{"no certificate cannot report", nil, "POST", "/internal/v1/ca/converted", 403, false},
		{"no certificate, or not accepted", nil, "GET", "/internal/v1/self", 403, false},
		{"unknown route", &Peer{NodeID: "m1", Role: "manager"}, "GET", "/internal/v1/nope", 404, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeNode{}
			h := NewNodeHandler(f, func(*http.Request) (Peer, bool) {
				if tt.peer == nil {
					return Peer{}, false
				}
				return *tt.peer, true
			})
			rec := httptest.NewRecorder()
			specChecked(t, h).ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader("x")))
			if rec.Code != tt.wantStatus {
				t.Errorf("got status %d; want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := len(f.calls) > 0; got != tt.wantCall {
				t.Errorf("backend called: %v; want %v", f.calls, tt.wantCall)
			}
			if rec.Code >= 400 {
				var eb errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error == "" {
					t.Errorf("error body %q is not {\"error\": ...}", rec.Body)
				}
			}
		})
	}
}

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
	}{
		{"ok", `{"token":"t","addr":"a:1"}`, 0},
		{"empty is an empty object", ``, 0},
		{"unknown field", `{"token":"t","evil":1}`, 400},
		{"trailing data", `{"token":"t"} {}`, 400},
		{"not json", `token=t`, 400},
		{"wrong type", `{"token":5}`, 400},
		{"too large", `{"token":"` + strings.Repeat("a", maxBody) + `"}`, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req JoinRequest
			err := decodeBody([]byte(tt.body), &req)
			if got := StatusOf(err); (err == nil && tt.status != 0) || (err != nil && got != tt.status) {
				t.Errorf("got %v (status %d); want status %d", err, got, tt.status)
			}
		})
	}
}

func TestClientReturnsServerErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(CodeLocked, "this node is locked; run 'holdfast unlock'"))
	}))
	defer srv.Close()
	_, err := NewClient(srv.Client(), srv.URL).Status(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusLocked || ae.Message != "this node is locked; run 'holdfast unlock'" {
		t.Errorf("got %#v; want the server's 423 and message", err)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("got %#v; want errors.Is ErrLocked after the round trip", err)
	}
	_, err = NewUnixClient("/nonexistent/socket").Status(context.Background())
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("got %v; want ErrUnreachable", err)
	}
}

// FuzzDecodeRequests feeds arbitrary bodies to every control API request
// type: decoding never panics, and what decodes re-encodes to JSON that
// decodes to the same value.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{`{}`, `{"token":"HFTKN-1-a-b","addr":"h:1"}`, `{"autolock":true,"cert_expiry":"90m"}`, `{"force":true}`, `{"cert_expiry":null}`, `{"name":"db","data":"aGk=","labels":{"a":"b"},"grants":["n1"]}`, `{"labels":{}}`, `{"key":"HFKEY-1-x"}`, `{"ca_cert_pem":"x","ca_key_pem":"y"}`, `{"cert_pem":"eA==","csr":"eA=="}`, `{"addr":"10.0.0.1:4243"}`, `{"passphrase":"correct horse battery"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mk := range []func() any{
			func() any { return new(InitRequest) }, func() any { return new(JoinRequest) },
			func() any { return new(LeaveRequest) }, func() any { return new(UpdateRequest) },
			func() any { return new(JoinGrantRequest) }, func() any { return new(RenewRequest) },
			func() any { return new(SecretCreateRequest) }, func() any { return new(SecretLabelsRequest) },
			func() any { return new(UnlockRequest) }, func() any { return new(RotateUnlockKeyRequest) },
			func() any { return new(CARotateRequest) }, func() any { return new(RecoverRequest) },
			func() any { return new(GossipAddrRequest) }, func() any { return new(SnapshotRequest) },
		} {
			v := mk()
			if err := decodeBody(body, v); err != nil {
				if s := StatusOf(err); s != 400 && s != 413 {
					t.Fatalf("decode error with status %d: %v", s, err)
				}
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			w := mk()
			if err := decodeBody(b, w); err != nil {
				t.Fatalf("re-decode of %s: %v", b, err)
			}
			if b2, _ := json.Marshal(w); !bytes.Equal(b, b2) {
				t.Fatalf("not stable: %s vs %s", b, b2)
			}
		}
	})
}

// TestReadBody: a body read by its declared length, by reading to the
// end when it declares none, and one over the limit either way is cut one
// byte past the limit (which decodeBody answers with 413); a body shorter
// than it declares is a 400.
func TestReadBody(t *testing.T) {
	req := func(body string, length int64) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		r.ContentLength = length
		return r
	}
	for _, tc := range []struct {
		name   string
		r      *http.Request
		want   string
		status int
	}{
		{"declared", req("hello", 5), "hello", 0},
		{"undeclared", req("hello", -1), "hello", 0},
		{"over the limit, declared", req("0123456789", 10), "012345678", 0},
		{"over the limit, undeclared", req("0123456789", -1), "012345678", 0},
		{"shorter than declared", req("hi", 5), "", http.StatusBadRequest},
	} {
		got, err := readBody(tc.r, 8)
		if tc.status != 0 {
			if StatusOf(err) != tc.status {
				t.Errorf("%s: %v, want %d", tc.name, err, tc.status)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
