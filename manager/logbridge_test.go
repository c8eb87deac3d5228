package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/autolock"
	"github.com/holdfast/holdfast/ca"
)

// jsonLines parses each line of a JSON slog output.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func TestHCLogBridge(t *testing.T) {
	for _, tc := range []struct {
		level     slog.Level
		wantDebug bool
	}{{slog.LevelDebug, true}, {slog.LevelInfo, false}} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			h := newHCLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tc.level})).With("component", "raft"))
			h.Debug("debug line", "peer", "n2")
			h.Warn("failed to contact", "server-id", "n3", "error", errors.New("dial tcp: refused"), "count", 3)
			recs := jsonLines(t, buf.String())
			if want := map[bool]int{true: 2, false: 1}[tc.wantDebug]; len(recs) != want {
				t.Fatalf("got %d records %v; want %d", len(recs), recs, want)
			}
			w := recs[len(recs)-1]
			for k, want := range map[string]any{"level": "WARN", "msg": "failed to contact", "component": "raft",
				"server-id": "n3", "error": "dial tcp: refused", "count": float64(3)} {
				if w[k] != want {
					t.Errorf("%s: got %v; want %v (record %v)", k, w[k], want, w)
				}
			}
			if tc.wantDebug && (recs[0]["level"] != "DEBUG" || recs[0]["peer"] != "n2") {
				t.Errorf("debug record: got %v; want level DEBUG, peer n2", recs[0])
			}
		})
	}
}

func TestMemberlistLoggerBridge(t *testing.T) {
	var buf bytes.Buffer
	l := newMemberlistLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "memberlist"), nil)
	// memberlist writes lines like these through Printf.
	l.Printf("[DEBUG] memberlist: Stream connection from=%s", "10.0.0.2:4243")
	l.Printf("[INFO] memberlist: Suspect n3 has failed, no acks received")
	l.Printf("[WARN] memberlist: Was able to connect to n3 over TCP but UDP probes failed")
	l.Printf("[ERR] memberlist: Failed to send ping: %v", errors.New("write: broken pipe"))
	l.Printf("no prefix at all")
	recs := jsonLines(t, buf.String())
	want := []struct{ level, msg string }{
		{"DEBUG", "Stream connection from=10.0.0.2:4243"},
		{"INFO", "Suspect n3 has failed, no acks received"},
		{"WARN", "Was able to connect to n3 over TCP but UDP probes failed"},
		{"ERROR", "Failed to send ping: write: broken pipe"},
		{"INFO", "no prefix at all"},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records %v; want %d", len(recs), recs, len(want))
	}
	for i, w := range want {
		if recs[i]["level"] != w.level || recs[i]["msg"] != w.msg || recs[i]["component"] != "memberlist" {
			t.Errorf("record %d: got %v; want level %s, msg %q, component memberlist", i, recs[i], w.level, w.msg)
		}
	}
}

// Never a key or secret byte in the logs, at any level: a whole workflow
// at debug level — secrets created, granted and delivered, join tokens
// read, rotated and used, the unlock key rotated and split into shares, an
// autolocked manager restarted, refused wrong keys and unlocked with
// shares — and no log line of any node holds a secret's data, an unlock
// key, a share, a KEK or a token's secret, raw or encoded.
func TestLogsNeverShowSecrets(t *testing.T) {
	c, key := newLockedCluster(t, 1)
	m0 := c.managers[0]
	var canaries []canary
	addToken := func(tok string) {
		canaries = append(canaries, canary{"token " + tok[:12], []byte(tok[strings.LastIndex(tok, "-")+1:])})
	}
	addKey := func(k string) {
		canaries = append(canaries, canary{"unlock key", []byte(k)},
			canary{"unlock key body", []byte(strings.TrimPrefix(k, autolock.KeyPrefix))},
			canary{"unlock key KEK", func() []byte { kek := mustKEK(t, k); return kek.Bytes() }()})
	}
	addKey(key)
	addToken(c.init.WorkerToken)
	addToken(c.init.ManagerToken)

	// A manager joins with a token, logging JSON at debug level.
	m1Logs := &syncBuffer{}
	m1 := newTestNode(t, "m1", func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(m1Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	m1.logs = m1Logs
	if _, err := m1.client.Join(ctxT(t), api.JoinRequest{Token: c.init.ManagerToken, Addr: c.init.Addr}); err != nil {
		t.Fatalf("join m1: %v", err)
	}
	c.managers = append(c.managers, m1)

	for i := range 3 {
		data := []byte(fmt.Sprintf("canary-%d-%d-do-not-log", i, time.Now().UnixNano()))
		canaries = append(canaries, canary{fmt.Sprintf("secret %d", i), data})
		name := fmt.Sprintf("s%d", i)
		if _, err := m1.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: name, Data: data, Grants: []string{m0.status().NodeID}}); err != nil {
			t.Fatal(err)
		}
	}
	// A bad create logs its refusal, not its data.
	bad := []byte("canary-refused-create-do-not-log")
	canaries = append(canaries, canary{"refused secret", bad})
	if _, err := m0.client.CreateSecret(ctxT(t), api.SecretCreateRequest{Name: "-bad name", Data: bad}); err == nil {
		t.Fatal("a bad secret name was accepted")
	}
	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleManager} {
		tok, err := m0.client.RotateJoinToken(ctxT(t), role)
		if err != nil {
			t.Fatal(err)
		}
		addToken(tok.Token)
		if _, err := m1.client.JoinToken(ctxT(t), role); err != nil {
			t.Fatal(err)
		}
	}
	// A worker joins with the rotated token; a stale token is refused.
	w0 := newTestNode(t, "w0")
	wtok, err := m0.client.JoinToken(ctxT(t), "worker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w0.client.Join(ctxT(t), api.JoinRequest{Token: c.init.WorkerToken, Addr: c.init.Addr}); err == nil {
		t.Fatal("a rotated worker token still joins")
	}
	if _, err := w0.client.Join(ctxT(t), api.JoinRequest{Token: wtok.Token, Addr: c.init.Addr}); err != nil {
		t.Fatalf("join w0: %v", err)
	}
	// The unlock key rotated and split 2-of-3, then m0 restarted locked:
	// the old key and a mistyped share are refused, two shares unlock it.
	rot, err := m0.client.RotateUnlockKey(ctxT(t), api.RotateUnlockKeyRequest{Shares: 3, Threshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	addKey(rot.UnlockKey)
	for i, sh := range rot.Shares {
		canaries = append(canaries, canary{fmt.Sprintf("share %d", i), []byte(sh)},
			canary{fmt.Sprintf("share %d body", i), []byte(sh[strings.LastIndex(sh, "-")+1:])})
	}
	for _, m := range c.managers {
		eventually(t, 15*time.Second, m.name+" re-wrapped under the new key", func() bool {
			return m.node.keyFiles.WrappedUnder(mustKEK(t, rot.UnlockKey))
		})
	}
	m0.stop()
	m0.start()
	sh := rot.Shares[0]
	for _, wrong := range []string{key, sh[:len(sh)-3] + "aaa"} {
		if _, err := m0.client.Unlock(ctxT(t), api.UnlockRequest{Key: wrong}); err == nil {
			t.Fatal("a wrong key unlocked the node")
		}
	}
	for _, sh := range rot.Shares[:2] {
		if _, err := m0.client.Unlock(ctxT(t), api.UnlockRequest{Key: sh}); err != nil {
			t.Fatalf("unlock with a share: %v", err)
		}
	}
	eventually(t, 15*time.Second, "m0 ready after two shares", func() bool { return m0.status().State == api.StateReady })

	nodes := []*testNode{m0, m1, w0}
	for _, tn := range nodes {
		logs := tn.logs.String()
		// The logs are real debug logs, raft's included on managers.
		if !strings.Contains(strings.ToLower(logs), "debug") || tn != w0 && !strings.Contains(logs, "raft") {
			t.Errorf("%s's logs have no debug lines, or no raft lines on a manager:\n%s", tn.name, logs)
		}
		for _, n := range needlesOf(canaries) {
			if i := strings.Index(logs, string(n.b)); i >= 0 {
				t.Errorf("%s's log shows %s (%s) at byte %d: %q", tn.name, n.canary, n.enc, i, logs[max(0, i-80):min(len(logs), i+80)])
			}
		}
	}
	if recs := jsonLines(t, m1.logs.String()); len(recs) < 10 {
		t.Errorf("m1 logged %d JSON records; want a debug log", len(recs))
	}
}
