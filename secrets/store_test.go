package secrets

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func nodes(ids ...string) func(string) bool {
	return func(id string) bool {
		for _, n := range ids {
			if n == id {
				return true
			}
		}
		return false
	}
}

func mustNew(t *testing.T, id, name string, grants ...string) *Secret {
	t.Helper()
	s, err := New(id, name, []byte("data of "+name), nil, grants, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustJSON(t *testing.T, st *Store) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fixture is a store with secrets a (id ida, granted to n1), b (idb,
// granted to n1 and n2) and c (idc).
func fixture(t *testing.T) *Store {
	t.Helper()
	var st Store
	for _, s := range []*Secret{mustNew(t, "ida", "a", "n1"), mustNew(t, "idb", "b", "n1", "n2"), mustNew(t, "idc", "c")} {
		if err := st.Create(s); err != nil {
			t.Fatal(err)
		}
	}
	return &st
}

func TestStoreMutations(t *testing.T) {
	t1 := t0.Add(time.Hour)
	exists := nodes("n1", "n2", "n3")
	tests := []struct {
		name  string
		op    func(st *Store) error
		want  error
		check func(t *testing.T, st *Store)
	}{
		{name: "create", op: func(st *Store) error { return st.Create(mustNew(t, "idd", "d")) }, check: func(t *testing.T, st *Store) {
			if st.Len() != 4 {
				t.Errorf("got %d secrets; want 4", st.Len())
			}
		}},
		{name: "create name taken", op: func(st *Store) error { return st.Create(mustNew(t, "idd", "a")) }, want: ErrNameTaken},
		{name: "create ID taken", op: func(st *Store) error { return st.Create(mustNew(t, "ida", "d")) }, want: ErrIDTaken},
		{name: "create invalid", op: func(st *Store) error {
			s := mustNew(t, "idd", "d")
			s.Size++
			return st.Create(s)
		}, want: ErrMalformed},
		{name: "create unsorted grants", op: func(st *Store) error {
			s := mustNew(t, "idd", "d")
			s.Grants = []string{"n2", "n1"}
			return st.Create(s)
		}, want: ErrMalformed},
		{name: "remove by name", op: func(st *Store) error {
			s, err := st.Remove("a")
			if err == nil && s.ID != "ida" {
				return fmt.Errorf("removed %s; want ida", s.ID)
			}
			return err
		}, check: func(t *testing.T, st *Store) {
			if _, ok := st.Get("a"); ok {
				t.Error("a is still there")
			}
			if _, ok := st.Get("ida"); ok {
				t.Error("ida is still there")
			}
			if st.Len() != 2 {
				t.Errorf("got %d secrets; want 2", st.Len())
			}
		}},
		{name: "remove by ID", op: func(st *Store) error { _, err := st.Remove("idb"); return err }, check: func(t *testing.T, st *Store) {
			if _, ok := st.Get("b"); ok {
				t.Error("b is still there")
			}
			// The name is free again.
			if err := st.Create(mustNew(t, "idb2", "b")); err != nil {
				t.Errorf("re-create b: %v", err)
			}
		}},
		{name: "remove unknown", op: func(st *Store) error { _, err := st.Remove("nope"); return err }, want: ErrNotFound},
		{name: "remove empty ref", op: func(st *Store) error { _, err := st.Remove(""); return err }, want: ErrNotFound},
		{name: "set labels", op: func(st *Store) error { return st.SetLabels("c", map[string]string{"k": "v"}, t1) }, check: func(t *testing.T, st *Store) {
			s, _ := st.Get("c")
			if s.Labels["k"] != "v" || !s.UpdatedAt.Equal(t1) || !s.CreatedAt.Equal(t0) {
				t.Errorf("got %#v; want labels k=v updated at %v", s, t1)
			}
			if err := st.SetLabels("c", nil, t1); err != nil {
				t.Fatal(err)
			}
			if s, _ := st.Get("c"); s.Labels != nil {
				t.Errorf("got labels %v; want none", s.Labels)
			}
		}},
		{name: "set bad labels", op: func(st *Store) error { return st.SetLabels("c", map[string]string{"k": "\x01"}, t1) }, want: ErrInvalidLabel},
		{name: "set labels unknown", op: func(st *Store) error { return st.SetLabels("zz", nil, t1) }, want: ErrNotFound},
		{name: "set labels bad time", op: func(st *Store) error {
			return st.SetLabels("c", nil, time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))
		}, want: ErrMalformed},
		{name: "grant", op: func(st *Store) error { return st.Grant("c", "n3", exists, t1) }, check: func(t *testing.T, st *Store) {
			s, _ := st.Get("idc")
			if !reflect.DeepEqual(s.Grants, []string{"n3"}) || !s.UpdatedAt.Equal(t1) {
				t.Errorf("got grants %v updated %v; want [n3] at %v", s.Grants, s.UpdatedAt, t1)
			}
		}},
		{name: "grant keeps order", op: func(st *Store) error { return st.Grant("a", "n0", nodes("n0"), t1) }, check: func(t *testing.T, st *Store) {
			s, _ := st.Get("a")
			if !reflect.DeepEqual(s.Grants, []string{"n0", "n1"}) {
				t.Errorf("got grants %v; want [n0 n1]", s.Grants)
			}
		}},
		{name: "grant again is a no-op", op: func(st *Store) error { return st.Grant("a", "n1", exists, t1) }, check: func(t *testing.T, st *Store) {
			s, _ := st.Get("a")
			if !reflect.DeepEqual(s.Grants, []string{"n1"}) || !s.UpdatedAt.Equal(t0) {
				t.Errorf("got grants %v updated %v; want [n1] unchanged", s.Grants, s.UpdatedAt)
			}
		}},
		{name: "grant unknown node", op: func(st *Store) error { return st.Grant("a", "n9", exists, t1) }, want: ErrUnknownNode},
		{name: "grant malformed node", op: func(st *Store) error { return st.Grant("a", "", func(string) bool { return true }, t1) }, want: ErrUnknownNode},
		{name: "grant nil nodeExists", op: func(st *Store) error { return st.Grant("a", "n1", nil, t1) }, want: ErrUnknownNode},
		{name: "grant unknown secret", op: func(st *Store) error { return st.Grant("zz", "n1", exists, t1) }, want: ErrNotFound},
		{name: "revoke", op: func(st *Store) error { return st.Revoke("b", "n1", t1) }, check: func(t *testing.T, st *Store) {
			s, _ := st.Get("b")
			if !reflect.DeepEqual(s.Grants, []string{"n2"}) || !s.UpdatedAt.Equal(t1) {
				t.Errorf("got grants %v; want [n2]", s.Grants)
			}
		}},
		{name: "revoke last", op: func(st *Store) error { return st.Revoke("a", "n1", t1) }, check: func(t *testing.T, st *Store) {
			if s, _ := st.Get("a"); s.Grants != nil {
				t.Errorf("got grants %v; want none", s.Grants)
			}
		}},
		{name: "revoke not granted is a no-op", op: func(st *Store) error { return st.Revoke("c", "n1", t1) }, check: func(t *testing.T, st *Store) {
			if s, _ := st.Get("c"); !s.UpdatedAt.Equal(t0) {
				t.Errorf("got updated %v; want unchanged", s.UpdatedAt)
			}
		}},
		{name: "revoke unknown secret", op: func(st *Store) error { return st.Revoke("zz", "n1", t1) }, want: ErrNotFound},
		{name: "revoke node", op: func(st *Store) error { st.RevokeNode("n1"); return nil }, check: func(t *testing.T, st *Store) {
			if got := st.GrantedTo("n1"); len(got) != 0 {
				t.Errorf("n1 still has %v", got)
			}
			if got := st.GrantedTo("n2"); len(got) != 1 || got[0].Name != "b" {
				t.Errorf("n2 has %v; want b", got)
			}
			if s, _ := st.Get("b"); !s.UpdatedAt.Equal(t0) {
				t.Errorf("RevokeNode changed UpdatedAt to %v", s.UpdatedAt)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := fixture(t)
			before := mustJSON(t, st)
			err := tt.op(st)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got error %v; want %v", err, tt.want)
			}
			if err != nil {
				if after := mustJSON(t, st); after != before {
					t.Errorf("store changed on error:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			if tt.check != nil {
				tt.check(t, st)
			}
		})
	}
}

func TestIDBeatsName(t *testing.T) {
	var st Store
	// Secret "x" has the ID "shadow"; secret "shadow" has the ID "id2".
	if err := st.Create(mustNew(t, "shadow", "x")); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(mustNew(t, "id2", "shadow")); err != nil {
		t.Fatal(err)
	}
	if s, ok := st.Get("shadow"); !ok || s.Name != "x" {
		t.Fatalf("Get(shadow) = %v; want the secret whose ID is shadow (x)", s)
	}
	s, err := st.Remove("shadow")
	if err != nil || s.Name != "x" {
		t.Fatalf("Remove(shadow) = %v, %v; want x", s, err)
	}
	// Now the name resolves.
	if s, ok := st.Get("shadow"); !ok || s.ID != "id2" {
		t.Fatalf("Get(shadow) = %v; want id2", s)
	}
}

func TestListAndGrantedToSorted(t *testing.T) {
	var st Store
	for i, name := range []string{"zeta", "alpha", "Mid", "beta"} {
		if err := st.Create(mustNew(t, fmt.Sprintf("id%d", 9-i), name, "n1")); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, m := range st.List() {
		names = append(names, m.Name)
	}
	if got, want := strings.Join(names, " "), "Mid alpha beta zeta"; got != want {
		t.Errorf("List order %q; want %q", got, want)
	}
	names = nil
	for _, s := range st.GrantedTo("n1") {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, " "), "Mid alpha beta zeta"; got != want {
		t.Errorf("GrantedTo order %q; want %q", got, want)
	}
	if got := st.GrantedTo("n2"); len(got) != 0 {
		t.Errorf("GrantedTo(n2) = %v; want none", got)
	}
	var empty Store
	if got := empty.List(); got == nil || len(got) != 0 {
		t.Errorf("List of an empty store = %#v; want an empty slice", got)
	}
}

// What Get, GrantedTo and List return shares nothing with the store.
func TestReturnedValuesAreCopies(t *testing.T) {
	st := fixture(t)
	before := mustJSON(t, st)
	s, _ := st.Get("a")
	s.Data[0] ^= 0xff
	s.Name = "renamed"
	s.Grants[0] = "evil"
	g := st.GrantedTo("n1")
	g[0].Data[0] ^= 0xff
	g[0].Grants[0] = "evil"
	m := st.List()
	m[0].Grants[0] = "evil"
	m[0].Labels["x"] = "y"
	if after := mustJSON(t, st); after != before {
		t.Errorf("store changed through returned values:\nbefore %s\nafter  %s", before, after)
	}
	// Create copies too.
	c := mustNew(t, "idz", "z")
	if err := st.Create(c); err != nil {
		t.Fatal(err)
	}
	c.Data[0] ^= 0xff
	if got, _ := st.Get("z"); got.Validate() != nil {
		t.Errorf("store shares data with the secret given to Create")
	}
}

func TestApplyCommands(t *testing.T) {
	exists := nodes("n1", "n2")
	var st Store
	steps := []struct {
		name  string
		apply func() error
		want  error
	}{
		{"create", func() error {
			return st.ApplyCreate(CreateCmd{ID: "id1", Name: "s1", Data: []byte("x"), Labels: map[string]string{"a": "b"}, Grants: []string{"n2", "n1"}, CreatedAt: t0}, exists)
		}, nil},
		{"create unknown node", func() error {
			return st.ApplyCreate(CreateCmd{ID: "id2", Name: "s2", Data: []byte("x"), Grants: []string{"n9"}, CreatedAt: t0}, exists)
		}, ErrUnknownNode},
		{"create grants, nil nodeExists", func() error {
			return st.ApplyCreate(CreateCmd{ID: "id2", Name: "s2", Data: []byte("x"), Grants: []string{"n1"}, CreatedAt: t0}, nil)
		}, ErrUnknownNode},
		{"create taken", func() error {
			return st.ApplyCreate(CreateCmd{ID: "id2", Name: "s1", Data: []byte("x"), CreatedAt: t0}, exists)
		}, ErrNameTaken},
		{"create too large", func() error {
			return st.ApplyCreate(CreateCmd{ID: "id2", Name: "s2", Data: make([]byte, MaxSize+1), CreatedAt: t0}, exists)
		}, ErrTooLarge},
		{"set labels", func() error { return st.ApplySetLabels(SetLabelsCmd{Ref: "s1", At: t0.Add(time.Minute)}) }, nil},
		{"revoke", func() error { return st.ApplyRevoke(RevokeCmd{Ref: "id1", NodeID: "n1", At: t0.Add(2 * time.Minute)}) }, nil},
		{"grant", func() error {
			return st.ApplyGrant(GrantCmd{Ref: "s1", NodeID: "n1", At: t0.Add(3 * time.Minute)}, exists)
		}, nil},
		{"grant unknown", func() error { return st.ApplyGrant(GrantCmd{Ref: "s1", NodeID: "n3", At: t0}, exists) }, ErrUnknownNode},
		{"remove", func() error { return st.ApplyRemove(RemoveCmd{Ref: "s1"}) }, nil},
		{"remove again", func() error { return st.ApplyRemove(RemoveCmd{Ref: "s1"}) }, ErrNotFound},
	}
	for _, s := range steps {
		before := mustJSON(t, &st)
		err := s.apply()
		if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("%s: got %v; want %v", s.name, err, s.want)
		}
		if err != nil && mustJSON(t, &st) != before {
			t.Errorf("%s: store changed on error", s.name)
		}
		if s.name == "grant" {
			got, _ := st.Get("s1")
			if !reflect.DeepEqual(got.Grants, []string{"n1", "n2"}) || got.Labels != nil || !got.UpdatedAt.Equal(t0.Add(3*time.Minute)) {
				t.Errorf("after grant: %#v", got)
			}
		}
	}
	if st.Len() != 0 {
		t.Errorf("got %d secrets; want 0", st.Len())
	}
}

// Commands survive a JSON round trip (the fsm envelope) and two stores that
// apply the same commands are equal.
func TestApplyDeterministic(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	cmds := []any{
		CreateCmd{ID: "id1", Name: "s1", Data: []byte("one"), Grants: []string{"n1"}, CreatedAt: at},
		CreateCmd{ID: "id2", Name: "s2", Data: []byte("two"), Labels: map[string]string{"k": "v"}, CreatedAt: at},
		GrantCmd{Ref: "s2", NodeID: "n1", At: at.Add(time.Second)},
		SetLabelsCmd{Ref: "id1", Labels: map[string]string{"x": "y"}, At: at.Add(2 * time.Second)},
		RevokeCmd{Ref: "s1", NodeID: "n1", At: at.Add(3 * time.Second)},
		RemoveCmd{Ref: "nope"},
	}
	apply := func(st *Store, c any) error {
		switch c := c.(type) {
		case CreateCmd:
			return st.ApplyCreate(c, nodes("n1"))
		case GrantCmd:
			return st.ApplyGrant(c, nodes("n1"))
		case SetLabelsCmd:
			return st.ApplySetLabels(c)
		case RevokeCmd:
			return st.ApplyRevoke(c)
		case RemoveCmd:
			return st.ApplyRemove(c)
		}
		return fmt.Errorf("unknown %T", c)
	}
	var direct, decoded Store
	for _, c := range cmds {
		errA := apply(&direct, c)
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		p := reflect.New(reflect.TypeOf(c))
		if err := json.Unmarshal(b, p.Interface()); err != nil {
			t.Fatal(err)
		}
		errB := apply(&decoded, p.Elem().Interface())
		if fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Errorf("%T: errors differ: %v vs %v", c, errA, errB)
		}
	}
	if !reflect.DeepEqual(direct, decoded) {
		t.Errorf("stores differ:\n%s\n%s", mustJSON(t, &direct), mustJSON(t, &decoded))
	}
}

func TestStoreJSONRoundTrip(t *testing.T) {
	st := fixture(t)
	if err := st.SetLabels("a", map[string]string{"env": "prod", "team": "Zoë"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back Store
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*st, back) {
		t.Errorf("round trip differs:\n%s\n%s", b, mustJSON(t, &back))
	}
	if s, ok := back.Get("b"); !ok || s.ID != "idb" || string(s.Data) != "data of b" {
		t.Errorf("Get(b) after restore = %v, %v", s, ok)
	}
	// Embedded in a parent struct, as in the FSM state, by value and by
	// pointer.
	type state struct {
		Secrets  Store  `json:"secrets"`
		SecretsP *Store `json:"secrets_p"`
	}
	b, err = json.Marshal(state{Secrets: *st, SecretsP: st})
	if err != nil {
		t.Fatal(err)
	}
	var sb state
	if err := json.Unmarshal(b, &sb); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sb.Secrets, *st) || !reflect.DeepEqual(*sb.SecretsP, *st) {
		t.Errorf("embedded round trip differs: %s", b)
	}
	// Empty and null.
	var empty Store
	if got := mustJSON(t, &empty); got != `{"secrets":[]}` {
		t.Errorf("empty store JSON %s; want {\"secrets\":[]}", got)
	}
	back = *fixture(t)
	if err := back.UnmarshalJSON([]byte("null")); err != nil || back.Len() != 0 {
		t.Errorf("null: got %d secrets, err %v; want an empty store", back.Len(), err)
	}
}

func TestStoreUnmarshalRefusesCorruption(t *testing.T) {
	a := mustNew(t, "ida", "a")
	b := mustNew(t, "idb", "b")
	enc := func(ss ...*Secret) string {
		out, err := json.Marshal(storeJSON{Secrets: ss})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	dupName := mustNew(t, "idb", "a")
	dupID := mustNew(t, "ida", "b")
	badDigest := b.Clone()
	badDigest.Digest = DigestOf([]byte("other"))
	badGrants := b.Clone()
	badGrants.Grants = []string{"n1", "n1"}
	emptyData := b.Clone()
	emptyData.Data, emptyData.Size, emptyData.Digest = nil, 0, DigestOf(nil)
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"duplicate names", enc(a, dupName), ErrNameTaken},
		{"duplicate IDs", enc(a, dupID), ErrIDTaken},
		{"digest mismatch", enc(a, badDigest), ErrMalformed},
		{"duplicate grants", enc(a, badGrants), ErrMalformed},
		{"empty data", enc(emptyData), ErrEmpty},
		{"invalid name", strings.Replace(enc(a), `"name":"a"`, `"name":"../a"`, 1), ErrInvalidName},
		{"null secret", `{"secrets":[null]}`, nil},
		{"unknown field", `{"secrets":[],"extra":1}`, nil},
		{"unknown secret field", strings.Replace(enc(a), `"id":`, `"x":1,"id":`, 1), nil},
		{"trailing data", enc(a) + `{}`, nil},
		{"truncated", enc(a)[:40], nil},
		{"not an object", `[]`, nil},
		{"time out of range", strings.Replace(enc(a), `"created_at":"2026-11-24T00:00:00Z"`, `"created_at":"0000-01-01T00:00:00+01:00"`, 1), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := fixture(t)
			before := mustJSON(t, st)
			if err := json.Unmarshal([]byte(tt.in), st); err == nil {
				t.Fatalf("json.Unmarshal(%s) succeeded; want an error", tt.in)
			}
			err := st.UnmarshalJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("UnmarshalJSON(%s) succeeded; want an error", tt.in)
			}
			if !errors.Is(err, ErrBadSnapshot) {
				t.Errorf("got %v; want ErrBadSnapshot", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v; want %v", err, tt.want)
			}
			if mustJSON(t, st) != before {
				t.Errorf("store changed on a refused snapshot")
			}
		})
	}
}
