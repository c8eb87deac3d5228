package secrets

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The grant index answers GrantedTo exactly as a scan of every secret
// would, whatever sequence of changes led there, including a snapshot
// round trip.
func TestGrantIndexMatchesScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	nodes := []string{"n1", "n2", "n3", "n4"}
	exists := func(string) bool { return true }
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var st Store
	check := func(step int, st *Store) {
		for _, n := range nodes {
			var want []string
			for _, s := range st.byID {
				if s.GrantedTo(n) {
					want = append(want, s.Name)
				}
			}
			slices.Sort(want)
			var got []string
			for _, s := range st.GrantedTo(n) {
				got = append(got, s.Name)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("step %d, node %s: got %v; want %v", step, n, got, want)
			}
		}
	}
	for step := range 2000 {
		name := fmt.Sprintf("s%d", r.IntN(30))
		node := nodes[r.IntN(len(nodes))]
		switch r.IntN(5) {
		case 0:
			s, err := New("id-"+name, name, []byte("x"), nil, []string{node}, now)
			if err == nil {
				_ = st.Create(s)
			}
		case 1:
			_, _ = st.Remove(name)
		case 2:
			_ = st.Grant(name, node, exists, now)
		case 3:
			_ = st.Revoke(name, node, now)
		case 4:
			if r.IntN(10) == 0 {
				st.RevokeNode(node)
			}
		}
		check(step, &st)
	}
	b, err := st.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var restored Store
	if err := restored.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	check(-1, &restored)
}
