package api

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each part of the control API below implements one route and records
// that it was reached; the rest of its interface is nil and panics.
type partLog struct{ got []string }

type fakeLifecycle struct {
	LifecycleBackend
	log *partLog
}

func (f fakeLifecycle) Leave(context.Context, LeaveRequest) error {
	f.log.got = append(f.log.got, "lifecycle")
	return nil
}

type fakeCluster struct {
	ClusterBackend
	log *partLog
}

func (f fakeCluster) Status(context.Context) (*Status, error) {
	f.log.got = append(f.log.got, "cluster")
	return &Status{}, nil
}

type fakeSecrets struct {
	SecretsBackend
	log *partLog
}

func (f fakeSecrets) Secrets(context.Context) ([]SecretMeta, error) {
	f.log.got = append(f.log.got, "secrets")
	return nil, nil
}

type fakeKeys struct {
	KeysBackend
	log *partLog
}

func (f fakeKeys) Keys(context.Context) ([]KeyInfo, error) {
	f.log.got = append(f.log.got, "keys")
	return nil, nil
}

type fakeSnapshot struct {
	SnapshotBackend
	log *partLog
}

func (f fakeSnapshot) SaveSnapshot(context.Context, SnapshotRequest) (*SnapshotStream, error) {
	f.log.got = append(f.log.got, "snapshot")
	return nil, Errorf(CodeInternal, "no backup here")
}

type fakeHealth struct{ log *partLog }

func (f fakeHealth) Health(context.Context) *Health {
	f.log.got = append(f.log.got, "health")
	return &Health{Status: HealthReady}
}

type fakeCA struct {
	CABackend
	log *partLog
}

func (f fakeCA) CA(context.Context) (*CAInfo, error) {
	f.log.got = append(f.log.got, "ca")
	return &CAInfo{}, nil
}

// TestControlMuxServesEachPart: the control API takes its parts from
// separate implementations, and each route reaches its own part only.
func TestControlMuxServesEachPart(t *testing.T) {
	log := &partLog{}
	h := NewControlMux(ControlBackends{
		Lifecycle: fakeLifecycle{log: log}, Cluster: fakeCluster{log: log}, Secrets: fakeSecrets{log: log},
		Keys: fakeKeys{log: log}, Snapshot: fakeSnapshot{log: log}, Health: fakeHealth{log: log}, CA: fakeCA{log: log},
	})
	for _, tc := range []struct{ method, path, part string }{
		{"POST", "/v1/leave", "lifecycle"},
		{"GET", "/v1/status", "cluster"},
		{"GET", "/v1/secrets", "secrets"},
		{"GET", "/v1/keys", "keys"},
		{"POST", "/v1/snapshot", "snapshot"},
		{"GET", "/v1/health", "health"},
		{"GET", "/v1/ca", "ca"},
	} {
		log.got = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader("{}")))
		if strings.Join(log.got, ",") != tc.part {
			t.Errorf("%s %s reached %v (status %d); want %s", tc.method, tc.path, log.got, rec.Code, tc.part)
		}
	}
}
