package manager

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/holdfast/holdfast/transport"
)

// heldConn is one node API connection held open with a node's
// credentials, to see whether the server closes it.
type heldConn struct {
	c  *tls.Conn
	br *bufio.Reader
}

// holdAPIConn opens a node API connection to addr with creds and has one
// request served on it (GET /internal/v1/status), so the server has
// accepted it; it fails the test if it could not.
func holdAPIConn(t *testing.T, creds *transport.Credentials, addr string) *heldConn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{transport.ProtoAPI},
		InsecureSkipVerify: true, Certificates: []tls.Certificate{creds.Cert},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &heldConn{c: c, br: bufio.NewReader(c)}
	if code, err := h.get("/internal/v1/status"); err != nil || code != http.StatusOK {
		t.Fatalf("held connection's first request: %d, %v", code, err)
	}
	return h
}

func (h *heldConn) get(path string) (int, error) {
	_ = h.c.SetDeadline(time.Now().Add(10 * time.Second))
	defer h.c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(h.c, "GET %s HTTP/1.1\r\nHost: holdfast\r\n\r\n", path); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// closedWithin reports nil if the server closes the idle connection
// within d.
func (h *heldConn) closedWithin(d time.Duration) error { return connClosedWithin(h.c, d) }
