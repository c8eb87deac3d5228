package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// canary is secret data that must never show up in anything printed.
const canary = "CANARY-d41d8cd98f00b204"

// leaks reports which encoding of the canary out contains, if any.
func leaks(out string) string {
	for _, enc := range []string{
		canary,
		base64.StdEncoding.EncodeToString([]byte(canary)),
		base64.StdEncoding.EncodeToString([]byte(canary))[:16],
		hex.EncodeToString([]byte(canary)),
		fmt.Sprint([]byte(canary)),
		fmt.Sprintf("%v", []byte(canary)[:6]),
	} {
		if strings.Contains(out, enc) {
			return enc
		}
	}
	return ""
}

func canarySecret(t *testing.T) *Secret {
	t.Helper()
	s, err := New("id1", "db-password", []byte(canary), map[string]string{"env": "prod"}, []string{"n1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSecretNeverPrintsData(t *testing.T) {
	s := canarySecret(t)
	cmd := CreateCmd{ID: "id1", Name: "db-password", Data: []byte(canary), CreatedAt: t0}
	var st Store
	if err := st.Create(s); err != nil {
		t.Fatal(err)
	}
	type wrapper struct {
		S    *Secret
		V    Secret
		List []*Secret
		St   *Store
	}
	w := wrapper{S: s, V: *s, List: []*Secret{s}, St: &st}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.3v"} {
		for _, arg := range []any{s, *s, cmd, &cmd, w, &w, []*Secret{s}, map[string]*Secret{"k": s}, st, &st} {
			outs = append(outs, verb+" "+fmt.Sprintf(verb, arg))
		}
	}
	outs = append(outs, s.String(), s.GoString(), cmd.String(), cmd.GoString(), fmt.Sprint(s), fmt.Sprintln(*s))

	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		l := slog.New(h(&buf))
		l.Info("msg", "secret", s, "value", *s, "cmd", cmd, "store", st)
		outs = append(outs, buf.String())
	}
	// The text handler formats other values with fmt, so a slice or struct
	// holding a Secret is safe there. (The JSON handler uses encoding/json for them,
	// which includes Data by design: see the Secret doc.)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "wrapped", w, "ptr", &w, "list", []*Secret{s})
	outs = append(outs, buf.String())
	got := s.LogValue().Resolve()
	outs = append(outs, got.String())

	for _, out := range outs {
		if enc := leaks(out); enc != "" {
			t.Errorf("output contains the data (%q): %s", enc, out)
		}
	}
	if !strings.Contains(s.GoString(), "redacted") || !strings.Contains(s.String(), "db-password") {
		t.Errorf("got %s / %s; want the name and a redaction marker", s, s.GoString())
	}
}

// JSON of a Secret includes the data, on purpose (sealed snapshots); Meta
// never does.
func TestJSONHasDataMetaDoesNot(t *testing.T) {
	s := canarySecret(t)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), base64.StdEncoding.EncodeToString([]byte(canary))) {
		t.Errorf("JSON of a Secret lacks its data: %s", b)
	}
	var back Secret
	if err := json.Unmarshal(b, &back); err != nil || string(back.Data) != canary {
		t.Errorf("JSON round trip: got %v, err %v", back, err)
	}
	m, err := json.Marshal(s.Meta())
	if err != nil {
		t.Fatal(err)
	}
	if enc := leaks(string(m)); enc != "" {
		t.Errorf("JSON of Meta contains the data: %s", m)
	}
	for _, key := range []string{`"id":`, `"name":`, `"labels":`, `"digest":`, `"size":`, `"created_at":`, `"updated_at":`, `"grants":`} {
		if !strings.Contains(string(m), key) {
			t.Errorf("Meta JSON %s lacks %s", m, key)
		}
	}
	empty, _ := New("id2", "x", []byte("x"), nil, nil, t0)
	m, _ = json.Marshal(empty.Meta())
	if !strings.Contains(string(m), `"labels":{}`) || !strings.Contains(string(m), `"grants":[]`) {
		t.Errorf("got %s; want labels {} and grants []", m)
	}
}

// Errors about a secret never quote its data.
func TestErrorsNeverContainData(t *testing.T) {
	s := canarySecret(t)
	var errs []error
	bad := s.Clone()
	bad.Digest = "sha256:00"
	var st Store
	errs = append(errs, st.Create(bad))
	bad = s.Clone()
	bad.Size = 3
	errs = append(errs, st.Create(bad))

	// A snapshot with the data mangled in several ways.
	good, err := json.Marshal(storeJSON{Secrets: []*Secret{s}})
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(canary))
	for _, mangled := range []string{
		strings.Replace(string(good), b64, canary, 1),                  // not base64
		strings.Replace(string(good), `"`+b64+`"`, canary, 1),          // not a string
		strings.Replace(string(good), `"`+b64+`"`, `"`+canary, 1),      // unterminated
		strings.Replace(string(good), `"data":`, `"data":[`+canary, 1), // garbage
		strings.Replace(string(good), `"id":"id1"`, `"id":"`+canary+`\x"`, 1),
		strings.Replace(string(good), `"digest"`, `"`+canary+`"`, 1), // unknown field named like data
	} {
		var st Store
		err := st.UnmarshalJSON([]byte(mangled))
		if err == nil {
			t.Errorf("UnmarshalJSON of mangled input succeeded: %s", mangled)
			continue
		}
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("got %v; want ErrBadSnapshot", err)
		}
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err == nil {
			t.Errorf("want an error")
			continue
		}
		if enc := leaks(err.Error()); enc != "" && !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("error contains the data (%q): %v", enc, err)
		}
	}
}
