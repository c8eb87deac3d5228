package secrets

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func binaryFixture(t *testing.T) *Store {
	t.Helper()
	st := fixture(t)
	if err := st.SetLabels("a", map[string]string{"env": "prod", "team": "", "a/b": "x y"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s, err := New("idd", "d", []byte{0, 1, 2, 255}, nil, nil, t0.In(time.FixedZone("x", 5*3600+1800)))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create(s); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStoreBinaryRoundTrip(t *testing.T) {
	st := binaryFixture(t)
	b := st.AppendBinary([]byte("prefix"))
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("AppendBinary lost what it appended to")
	}
	var got Store
	if err := got.UnmarshalBinary(b[len("prefix"):]); err != nil {
		t.Fatal(err)
	}
	// The same store as a JSON round trip gives, indexes included.
	var viaJSON Store
	if err := viaJSON.UnmarshalJSON([]byte(mustJSON(t, st))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, viaJSON) {
		t.Fatalf("binary round trip differs from JSON's:\n%s\n%s", mustJSON(t, &got), mustJSON(t, &viaJSON))
	}
	if ids := got.GrantedTo("n1"); len(ids) != 2 {
		t.Fatalf("grant index not rebuilt: %d secrets for n1", len(ids))
	}
	// Canonical: the same store encodes to the same bytes.
	if again := got.AppendBinary(nil); !bytes.Equal(again, b[len("prefix"):]) {
		t.Fatal("encoding is not canonical")
	}
	var empty Store
	if err := got.UnmarshalBinary(empty.AppendBinary(nil)); err != nil || got.Len() != 0 {
		t.Fatalf("empty store: %v, %d secrets", err, got.Len())
	}
}

func TestStoreBinaryRefusesCorruption(t *testing.T) {
	st := binaryFixture(t)
	good := st.AppendBinary(nil)
	before := mustJSON(t, st)
	refuse := func(name string, b []byte) {
		t.Helper()
		if err := st.UnmarshalBinary(b); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("%s: got %v, want ErrBadSnapshot", name, err)
		} else if bytes.Contains([]byte(err.Error()), []byte("data of")) {
			t.Fatalf("%s: the error shows secret data: %v", name, err)
		}
		if mustJSON(t, st) != before {
			t.Fatalf("%s: a refused snapshot changed the store", name)
		}
	}
	for n := 0; n < len(good); n++ {
		refuse("truncated", good[:n])
	}
	refuse("trailing byte", append(bytes.Clone(good), 0))
	refuse("version", append([]byte{2}, good[1:]...))
	// Every byte of the data of secret a, flipped, breaks its digest.
	i := bytes.Index(good, []byte("data of a"))
	flipped := bytes.Clone(good)
	flipped[i] ^= 1
	refuse("flipped data", flipped)
	// Two secrets with one name.
	dup := bytes.Replace(good, []byte("\x01b"), []byte("\x01a"), 1)
	refuse("duplicate name", dup)
	// A count far beyond the input.
	refuse("huge count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
}

// A frozen copy is what the store held when it was frozen, whatever the
// store does afterwards.
func TestFrozenIsUnaffectedByLaterCommands(t *testing.T) {
	st := binaryFixture(t)
	want := st.AppendBinary(nil)
	frozen := st.Frozen()
	later := t0.Add(2 * time.Hour)
	if err := st.SetLabels("b", map[string]string{"new": "label"}, later); err != nil {
		t.Fatal(err)
	}
	if err := st.Grant("c", "n3", nodes("n3"), later); err != nil {
		t.Fatal(err)
	}
	if err := st.Revoke("b", "n2", later); err != nil {
		t.Fatal(err)
	}
	st.RevokeNode("n1")
	if _, err := st.Remove("d"); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(mustNew(t, "ide", "e")); err != nil {
		t.Fatal(err)
	}
	if got := frozen.AppendBinary(nil); !bytes.Equal(got, want) {
		t.Fatal("commands applied after Frozen changed the frozen copy")
	}
}

func FuzzStoreUnmarshalBinary(f *testing.F) {
	var st Store
	s1, _ := New("id1", "one", []byte("first secret"), map[string]string{"env": "prod", "a/b": ""}, []string{"n2", "n1"}, t0)
	s2, _ := New("one", "two", []byte{0, 1, 2, 255}, nil, nil, t0)
	_ = st.Create(s1)
	_ = st.Create(s2)
	f.Add(st.AppendBinary(nil))
	f.Add((&Store{}).AppendBinary(nil))
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st Store
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		out := st.AppendBinary(nil)
		var again Store
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("decode of an encoded store: %v", err)
		}
		if !reflect.DeepEqual(st, again) {
			t.Fatal("round trip differs")
		}
		if !bytes.Equal(again.AppendBinary(nil), out) {
			t.Fatal("second encoding differs")
		}
	})
}
