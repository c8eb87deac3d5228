package api

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

type batchNode struct {
	fakeNode
	got [][]byte
	res []error
	err error
}

func (b *batchNode) ApplyBatchForwarded(_ context.Context, from Peer, cmds [][]byte) ([]error, error) {
	b.got = cmds
	return b.res, b.err
}

// TestApplyBatchRoute: the batch route hands the commands over in order
// and answers each one's result; the client turns them back into errors
// with the same status and message. Workers and malformed bodies are
// refused; an error for the whole batch is answered as it is.
func TestApplyBatchRoute(t *testing.T) {
	b := &batchNode{res: []error{nil, Errorf(CodeConflict, "name taken"), nil}}
	role := "manager"
	srv := httptest.NewServer(NewNodeHandler(b, func(*http.Request) (Peer, bool) { return Peer{"m1", role}, true }))
	defer srv.Close()
	c := NewClient(srv.Client(), srv.URL)
	cmds := [][]byte{[]byte("one"), []byte("two"), {}}
	errs, err := c.ApplyBatchForwarded(context.Background(), cmds)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.got) != 3 || string(b.got[0]) != "one" || string(b.got[1]) != "two" || len(b.got[2]) != 0 {
		t.Fatalf("backend got %q", b.got)
	}
	var ae *Error
	if errs[0] != nil || errs[2] != nil || !errors.As(errs[1], &ae) || ae.Status != http.StatusConflict || ae.Message != "name taken" {
		t.Fatalf("results = %v", errs)
	}

	b.err = Errorf(CodeNotLeader, "this node is not the leader")
	if _, err := c.ApplyBatchForwarded(context.Background(), cmds); StatusOf(err) != http.StatusMisdirectedRequest {
		t.Fatalf("whole-batch error: %v, want 421", err)
	}
	b.err = nil

	b.res = []error{nil} // fewer results than commands: a broken backend
	if _, err := c.ApplyBatchForwarded(context.Background(), cmds); StatusOf(err) != http.StatusInternalServerError {
		t.Fatalf("short results: %v, want 500", err)
	}

	resp, err := srv.Client().Post(srv.URL+"/internal/v1/apply-batch", "application/octet-stream", bytes.NewReader([]byte{0x05, 'a'}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed batch: %d, want 400", resp.StatusCode)
	}

	role = "worker"
	b.got = nil
	if _, err := c.ApplyBatchForwarded(context.Background(), cmds); StatusOf(err) != http.StatusForbidden || b.got != nil {
		t.Fatalf("worker: %v (backend got %q), want 403 and no call", err, b.got)
	}
}

// FuzzParseApplyBatch: never panics; a parsed batch encodes back to the
// same bytes.
func FuzzParseApplyBatch(f *testing.F) {
	f.Add(AppendApplyBatch(nil, [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{1}, 300)}))
	f.Add([]byte{0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		cmds, err := ParseApplyBatch(in)
		if err != nil {
			if s := StatusOf(err); s != http.StatusBadRequest && s != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d", s)
			}
			return
		}
		if !bytes.Equal(AppendApplyBatch(nil, cmds), in) {
			t.Fatal("parse then append changed the bytes")
		}
	})
}
