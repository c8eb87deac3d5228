package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

// listBackend answers the secret routes with a fixed list.
type listBackend struct {
	SecretsBackend
	list []SecretMeta
}

func (b listBackend) Secrets(context.Context) ([]SecretMeta, error) { return b.list, nil }

func metaList(n int) []SecretMeta {
	t0 := time.Date(2026, 12, 3, 23, 0, 0, 123456789, time.UTC)
	out := []SecretMeta{
		{ID: "a", Name: "html<&>", Labels: map[string]string{"k": "v<>", "é": "ü"}, Digest: "sha256:00", Size: 1, CreatedAt: t0, UpdatedAt: t0.Add(time.Second), Grants: []string{"n1", "n2"}},
		{ID: "b", Name: "empty-labels", Labels: map[string]string{}, Grants: []string{}},
		{ID: "c", Name: "nil-labels"},
	}
	for i := range n {
		out = append(out, SecretMeta{ID: fmt.Sprintf("id%06d", i), Name: fmt.Sprintf("secret-%06d", i), Digest: "sha256:" + fmt.Sprint(i), Size: 1024, CreatedAt: t0, UpdatedAt: t0})
	}
	return out
}

// writeRecorder records the size of each write to the response.
type writeRecorder struct {
	*httptest.ResponseRecorder
	writes []int
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.ResponseRecorder.Write(p)
}

// TestSecretListStreams: GET /v1/secrets answers the bytes json.Encoder
// wrote before, in writes of at most 64 KiB: a list of 20,000 secrets
// (about 3 MiB) is not first built in one buffer, as it was.
func TestSecretListStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		list []SecretMeta
	}{
		{"empty", []SecretMeta{}},
		{"nil", nil},
		{"small", metaList(0)},
		{"20,000", metaList(20000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			secretRoutes(mux, listBackend{list: tc.list})
			rec := &writeRecorder{ResponseRecorder: httptest.NewRecorder()}
			mux.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/secrets", nil))
			var want bytes.Buffer
			if err := json.NewEncoder(&want).Encode(tc.list); err != nil {
				t.Fatal(err)
			}
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("status %d, content type %q; want 200, application/json", rec.Code, rec.Header().Get("Content-Type"))
			}
			if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
				t.Fatalf("body differs from json.Encoder's:\n got %.300s\nwant %.300s", rec.Body.Bytes(), want.Bytes())
			}
			for _, n := range rec.writes {
				if n > 64<<10 {
					t.Errorf("one write of %d bytes of a %d-byte list; want at most 64 KiB", n, want.Len())
				}
			}
		})
	}
}

// TestClientSecretsDecodesAsBefore: Client.Secrets reads the list as
// encoding/json did, nil and empty maps and slices included.
func TestClientSecretsDecodesAsBefore(t *testing.T) {
	list := metaList(2000)
	mux := http.NewServeMux()
	secretRoutes(mux, listBackend{list: list})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	cl := NewClient(srv.Client(), srv.URL)
	defer cl.Close()
	got, err := cl.Secrets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(list)
	var want []SecretMeta
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Secrets decoded %d metas unlike encoding/json (first: %+v; want %+v)", len(got), got[0], want[0])
	}
}
