package manager

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/secrets"
	"github.com/holdfast/holdfast/transport"
)

func TestSecretsLinearizableAndLimits(t *testing.T) {
	c := newCluster(t, 3, 0)
	fs := c.followers(c.leader())
	writer, reader := fs[0], fs[1]
	for i := range 5 {
		name := "s" + string(rune('a'+i))
		id, err := writer.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: name, Data: []byte("v"), Labels: map[string]string{"n": name}})
		if err != nil {
			t.Fatalf("create through a follower: %v", err)
		}
		got, err := reader.client.Secret(ctxT(t), name)
		if err != nil || got.ID != id.ID {
			t.Fatalf("inspect through another manager at once: got %+v, %v; want ID %s", got, err, id.ID)
		}
	}
	exact := bytes.Repeat([]byte{7}, secrets.MaxSize)
	if _, err := writer.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "big", Data: exact}); err != nil {
		t.Errorf("exactly 500 KiB: %v", err)
	}
	tests := []struct {
		name   string
		req    api.SecretCreateRequest
		status int
	}{
		{"one byte too many", api.SecretCreateRequest{Name: "big2", Data: append(exact, 7)}, http.StatusRequestEntityTooLarge},
		{"name taken", api.SecretCreateRequest{Name: "big", Data: []byte("x")}, http.StatusConflict},
		{"bad name", api.SecretCreateRequest{Name: "-x", Data: []byte("x")}, http.StatusBadRequest},
		{"empty data", api.SecretCreateRequest{Name: "e", Data: nil}, http.StatusBadRequest},
		{"grant to unknown node", api.SecretCreateRequest{Name: "g", Data: []byte("x"), Grants: []string{"nosuchnode"}}, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := reader.client.CreateSecret(ctxT(t), tt.req); apiStatus(err) != tt.status {
				t.Errorf("got %v; want status %d", err, tt.status)
			}
		})
	}
	if _, err := reader.client.Secret(ctxT(t), "nope"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("inspect unknown: got %v; want 404", err)
	}
	if err := reader.client.RemoveSecret(ctxT(t), "nope"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("rm unknown: got %v; want 404", err)
	}
	if err := writer.client.GrantSecret(ctxT(t), "sa", "nosuchnode"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("grant to unknown node: got %v; want 404", err)
	}
	if err := writer.client.SetSecretLabels(ctxT(t), "sa", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := reader.client.Secret(ctxT(t), "sa"); len(got.Labels) != 0 {
		t.Errorf("labels after update with none: got %v; want none", got.Labels)
	}
}

func TestSecretDeliveryToWorker(t *testing.T) {
	c := newCluster(t, 3, 2)
	m, w, other := c.managers[1], c.workers[0], c.workers[1]
	wid := w.status().NodeID
	data := []byte("p@ss\x00word\n" + strings.Repeat("z", 1000))
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "db.password", Data: data, Grants: []string{wid}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(w.cfg.SecretsDir, "db.password")
	eventually(t, 10*time.Second, "the secret on the granted worker", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && bytes.Equal(b, data)
	})
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o400 {
		t.Errorf("got mode %v; want 0400", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(other.cfg.SecretsDir, "db.password")); err == nil {
		t.Error("an ungranted worker received the secret")
	}

	// An ungranted node asking directly is refused, whether the secret
	// exists or not.
	meta, _ := m.client.Secret(ctxT(t), "db.password")
	hc := transport.NewAPIClient(transport.Config{Creds: other.node.current().creds})
	defer hc.CloseIdleConnections()
	for _, id := range []string{meta.ID, "nosuchsecret"} {
		_, err := api.NewClient(hc, "https://"+m.status().Addr).FetchSecret(ctxT(t), id)
		if apiStatus(err) != http.StatusForbidden {
			t.Errorf("ungranted fetch of %s: got %v; want 403", id, err)
		}
	}

	// Revoke deletes the file; grant again brings it back; rm deletes it.
	if err := m.client.RevokeSecret(ctxT(t), "db.password", wid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "revoke deletes the file", func() bool { _, err := os.Stat(path); return os.IsNotExist(err) })
	if err := m.client.GrantSecret(ctxT(t), "db.password", wid); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "grant writes it again", func() bool { _, err := os.Stat(path); return err == nil })

	// A worker that was offline catches up when it returns.
	w.stop()
	if err := m.client.RemoveSecret(ctxT(t), "db.password"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "api.key", Data: []byte("k"), Grants: []string{wid}}); err != nil {
		t.Fatal(err)
	}
	w.start()
	eventually(t, 15*time.Second, "the returning worker catches up", func() bool {
		_, errOld := os.Stat(path)
		b, errNew := os.ReadFile(filepath.Join(w.cfg.SecretsDir, "api.key"))
		return os.IsNotExist(errOld) && errNew == nil && string(b) == "k"
	})
}

// Secret bytes never appear in a response body nor in the daemon's debug
// logs.
func TestSecretDataNeverLeaves(t *testing.T) {
	c := newCluster(t, 3, 1)
	canary := "CANARY-" + strings.Repeat("q7", 20)
	m := c.managers[2]
	wid := c.workers[0].status().NodeID
	raw := func(method, path string, body string) string {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", m.cfg.SocketPath)
		}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(method, "http://h"+path, strings.NewReader(body))
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	enc := base64.StdEncoding.EncodeToString([]byte(canary))
	bodies := []string{
		raw("POST", "/v1/secrets", `{"name":"c1","data":"`+enc+`","grants":["`+wid+`"]}`),
		raw("POST", "/v1/secrets", `{"name":"c1","data":"`+enc+`"}`), // name taken
		raw("POST", "/v1/secrets", `{"name":"-bad","data":"`+enc+`"}`),
		raw("GET", "/v1/secrets", ""),
		raw("GET", "/v1/secrets/c1", ""),
		raw("PATCH", "/v1/secrets/c1", `{"labels":{"a":"b"}}`),
	}
	eventually(t, 10*time.Second, "delivery to the worker", func() bool {
		_, err := os.Stat(filepath.Join(c.workers[0].cfg.SecretsDir, "c1"))
		return err == nil
	})
	bodies = append(bodies, raw("DELETE", "/v1/secrets/c1", ""))
	for i, b := range bodies {
		if strings.Contains(b, canary) || strings.Contains(b, enc) {
			t.Errorf("response %d carries the secret: %s", i, b)
		}
	}
	for _, tn := range append(append([]*testNode{}, c.managers...), c.workers...) {
		if logs := tn.logs.String(); strings.Contains(logs, canary) || strings.Contains(logs, enc) {
			t.Errorf("%s logged the secret", tn.name)
		}
	}
	if !strings.Contains(m.logs.String(), "level=DEBUG") {
		t.Errorf("%s has no debug logs: the check proves nothing", m.name)
	}
}
