package secrets

import (
	"slices"
	"testing"
	"time"
)

func TestFingerprint(t *testing.T) {
	a, b := Ref{"1", "db", "sha256:aa"}, Ref{"2", "tls", "sha256:bb"}
	tests := []struct {
		name string
		x, y []Ref
		same bool
	}{
		{"order does not matter", []Ref{a, b}, []Ref{b, a}, true},
		{"empty and nil", nil, []Ref{}, true},
		{"a new digest", []Ref{a}, []Ref{{"1", "db", "sha256:cc"}}, false},
		{"a renamed secret", []Ref{a}, []Ref{{"1", "db2", "sha256:aa"}}, false},
		{"one more", []Ref{a}, []Ref{a, b}, false},
	}
	for _, tt := range tests {
		if got := Fingerprint(tt.x) == Fingerprint(tt.y); got != tt.same {
			t.Errorf("%s: fingerprints equal = %v; want %v", tt.name, got, tt.same)
		}
	}
}

func TestFetches(t *testing.T) {
	mk := func(id, name, data string) *Secret {
		s, err := New(id, name, []byte(data), nil, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	db, tls := mk("1", "db", "pw"), mk("2", "tls", "key")
	ref := func(s *Secret) Ref { return Ref{s.ID, s.Name, s.Digest} }
	tests := []struct {
		name  string
		have  map[string]*Secret
		refs  []Ref
		keep  []string
		fetch []string
	}{
		{"nothing held", nil, []Ref{ref(db), ref(tls)}, nil, []string{"1", "2"}},
		{"all held", map[string]*Secret{"1": db, "2": tls}, []Ref{ref(db), ref(tls)}, []string{"1", "2"}, nil},
		{"one revoked", map[string]*Secret{"1": db, "2": tls}, []Ref{ref(tls)}, []string{"2"}, nil},
		{"digest differs", map[string]*Secret{"1": db}, []Ref{{"1", "db", "sha256:00"}}, nil, []string{"1"}},
		{"nothing granted", map[string]*Secret{"1": db}, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, fetch := Fetches(tt.have, tt.refs)
			var kept, fetched []string
			for id := range keep {
				kept = append(kept, id)
			}
			slices.Sort(kept)
			for _, r := range fetch {
				fetched = append(fetched, r.ID)
			}
			if !slices.Equal(kept, tt.keep) || !slices.Equal(fetched, tt.fetch) {
				t.Errorf("keep %v, fetch %v; want %v, %v", kept, fetched, tt.keep, tt.fetch)
			}
		})
	}
}
