package fsm

import (
	"encoding/base64"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/overlaykeys"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/secrets"
)

const redactCanary = "CANARY-redact-7d2f"

// TestRedactEveryCommand puts the canary in every secret field of every
// command that has one, and in a whole state, and checks that RedactJSON
// leaves none of it, raw or base64.
func TestRedactEveryCommand(t *testing.T) {
	cl := Cluster{ID: "c1", RootKeyPEM: []byte(redactCanary), WorkerToken: redactCanary, ManagerToken: redactCanary, UnlockKey: redactCanary}
	cmds := []Command{
		&ClusterInit{Cluster: cl, First: Node{ID: "n1", Role: ca.RoleManager}},
		&TokenRotate{Role: ca.RoleWorker, Token: redactCanary},
		&AutolockSet{Enabled: true, UnlockKey: redactCanary},
		&KeysRotate{Rotation: overlaykeys.Rotation{Subsystem: overlaykeys.IPsec, Keys: []overlaykeys.Key{{ID: "k1", Material: []byte(redactCanary), Lamport: 1}}}},
		&SecretCreate{secrets.CreateCmd{ID: "s1", Name: "db", Data: []byte(redactCanary), CreatedAt: time.Unix(1, 0)}},
		&Batch{Commands: []Command{
			&NodeUpdate{ID: "n1", GossipAddr: "10.0.0.1:4243"},
			&SecretCreate{secrets.CreateCmd{ID: "s2", Name: "db2", Data: []byte(redactCanary), CreatedAt: time.Unix(1, 0)}},
		}},
	}
	st := newState()
	st.Cluster = &cl
	st.Keys = overlaykeys.Keyrings{overlaykeys.Gossip: {Keys: []overlaykeys.Key{{ID: "g1", Material: []byte(redactCanary), Lamport: 1}}}}
	doc, err := EncodeSnapshot(st, 7)
	if err != nil {
		t.Fatal(err)
	}
	docs := [][]byte{doc}
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		name, body, err := Describe(b)
		if err != nil || name != c.Type().String() {
			t.Fatalf("Describe(%s) = %q, %v", c.Type(), name, err)
		}
		docs = append(docs, body)
	}
	for _, d := range docs {
		out, err := RedactJSON(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range []string{redactCanary, base64.StdEncoding.EncodeToString([]byte(redactCanary))[:12]} {
			if strings.Contains(string(out), enc) {
				t.Errorf("redacted %s still holds %q", out, enc)
			}
		}
		if !strings.Contains(string(out), Redacted) {
			t.Errorf("redacted %s has no redaction marker", out)
		}
		if !strings.Contains(string(d), redactCanary) && !strings.Contains(string(d), base64.StdEncoding.EncodeToString([]byte(redactCanary))) {
			t.Errorf("the test document %s does not hold the canary to begin with", d)
		}
	}
}

func TestSnapshotDataRoundTrip(t *testing.T) {
	f := New(nil)
	if errs := applyAll(t, f, initCmd(), &LeaderReady{NodeID: "n1", Term: 1}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	data, idx, err := f.SnapshotData()
	if err != nil || idx != 2 {
		t.Fatalf("SnapshotData: index %d, %v; want 2", idx, err)
	}
	st, idx, err := DecodeSnapshot(data)
	if err != nil || idx != 2 || st.Cluster == nil || st.Cluster.ID != "c1" || st.Nodes["n1"] == nil {
		t.Fatalf("DecodeSnapshot: %+v, %d, %v", st, idx, err)
	}
	if _, _, err := DecodeSnapshot([]byte(`{"format":"other"}`)); err == nil {
		t.Error("a document of another format was decoded")
	}
}
