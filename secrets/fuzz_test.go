package secrets

import (
	"encoding/json"
	"reflect"
	"regexp"
	"testing"
)

// nameRE is the name rule written independently of ValidateName.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "db-password", ".x", "-x", "x\n", "a/b", "é", "\xff", "A.b_c-9",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		// The regexp works on runes; it must agree on every byte string,
		// and a trailing "\n" must not sneak past "$".
		want := nameRE.MatchString(s)
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v; independent rule says ok=%v", s, err, want)
		}
	})
}

func FuzzStoreUnmarshal(f *testing.F) {
	var st Store
	s1, _ := New("id1", "one", []byte("first secret"), map[string]string{"env": "prod", "a/b": ""}, []string{"n2", "n1"}, t0)
	s2, _ := New("one", "two", []byte{0, 1, 2, 255}, nil, nil, t0)
	_ = st.Create(s1)
	_ = st.Create(s2)
	good, _ := json.Marshal(&st)
	f.Add(good)
	f.Add([]byte(`{"secrets":[]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"secrets":null}`))
	f.Add([]byte(`{"secrets":[{"id":"a","name":"a","data":"eA==","digest":"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","size":1,"created_at":"0000-01-01T00:00:00+01:00","updated_at":"9999-12-31T23:59:59-01:00"}]}`))
	f.Add([]byte(`{"secrets":[{"id":"a","name":"a","labels":{},"grants":[],"data":"eA==","digest":"sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","size":1,"created_at":"2026-01-01T00:00:00.5+05:30","updated_at":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st Store
		if err := st.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := json.Marshal(&st)
		if err != nil {
			t.Fatalf("marshal of an unmarshaled store: %v", err)
		}
		var again Store
		if err := again.UnmarshalJSON(out); err != nil {
			t.Fatalf("unmarshal of a marshaled store: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(st, again) {
			t.Fatalf("round trip differs:\n%s\n%s", out, mustJSON(t, &again))
		}
		out2, err := json.Marshal(&again)
		if err != nil || string(out2) != string(out) {
			t.Fatalf("second marshal differs (%v):\n%s\n%s", err, out, out2)
		}
	})
}
