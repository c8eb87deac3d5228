package spread

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func ident(s string) string { return s }

func TestOrderIsStableAndAPermutation(t *testing.T) {
	targets := []string{"m1", "m2", "m3"}
	reversed := []string{"m3", "m2", "m1"}
	for i := range 50 {
		key := fmt.Sprintf("worker-%d", i)
		got := Order(key, targets, ident)
		if again := Order(key, reversed, ident); !slices.Equal(got, again) {
			t.Fatalf("%s: order depends on the input's order: %v vs %v", key, got, again)
		}
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if !slices.Equal(sorted, targets) {
			t.Fatalf("%s: got %v; want a permutation of %v", key, got, targets)
		}
	}
	if !slices.Equal(targets, []string{"m1", "m2", "m3"}) {
		t.Fatalf("Order changed its input: %v", targets)
	}
}

// The first choices spread evenly, and a target that leaves moves only
// the keys that ranked it first.
func TestOrderSpreadsAndMovesOnlyTheLeaversKeys(t *testing.T) {
	targets := []string{"m1", "m2", "m3"}
	const n = 3000
	first := map[string]int{}
	before := map[string]string{}
	for i := range n {
		key := fmt.Sprintf("node-%04d", i)
		o := Order(key, targets, ident)
		first[o[0]]++
		before[key] = o[0]
	}
	for _, m := range targets {
		if c := first[m]; c < n/3*8/10 || c > n/3*12/10 {
			t.Errorf("%s is first for %d of %d keys; want about %d", m, c, n, n/3)
		}
	}
	moved := 0
	for key, was := range before {
		now := Order(key, []string{"m1", "m3"}, ident)[0]
		if was != "m2" && now != was {
			t.Fatalf("%s moved from %s to %s though %s stayed", key, was, now, was)
		}
		if was == "m2" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no key ranked m2 first")
	}
}

func TestHashIsFixed(t *testing.T) {
	// Every process must agree, whatever its build: the hash is a fixed
	// function of the ID (FNV-1a, then mixed). A change here would make
	// workers of two builds rank the managers differently.
	if Hash("a") == Hash("b") {
		t.Fatal("Hash does not tell a from b")
	}
	if got := Hash("worker-7"); got != 0x17b25585652ce558 {
		t.Fatalf("Hash(worker-7) = %#x; it was 0x17b25585652ce558: the function changed", got)
	}
}

func TestPickerFallsBackAndReturns(t *testing.T) {
	now := time.Unix(1000, 0)
	p := NewPicker("worker-7", time.Minute)
	p.now = func() time.Time { return now }
	p.rand = func() float64 { return 0.5 }
	ids := []string{"m1", "m2", "m3"}
	order := Order("worker-7", ids, ident)
	at := func() string { return ids[p.Pick(ids)] }
	if got := at(); got != order[0] {
		t.Fatalf("first pick %s; want the first choice %s", got, order[0])
	}
	if got := at(); got != order[0] {
		t.Fatalf("a pick after a success moved to %s; want %s", got, order[0])
	}
	p.Failed()
	if got := at(); got != order[1] {
		t.Fatalf("after a failure got %s; want the second choice %s", got, order[1])
	}
	p.Failed()
	if got := at(); got != order[2] {
		t.Fatalf("after two failures got %s; want %s", got, order[2])
	}
	p.Failed()
	if got := at(); got != order[0] {
		t.Fatalf("after three failures got %s; want to wrap to %s", got, order[0])
	}
	p.Failed()
	if got := at(); got != order[1] {
		t.Fatalf("got %s; want %s", got, order[1])
	}
	// Left the first choice at 1000 s; back at 1000 + 60 + 0.5×60 s.
	now = now.Add(89 * time.Second)
	if got := at(); got != order[1] {
		t.Fatalf("before the return time got %s; want to stay on %s", got, order[1])
	}
	now = now.Add(time.Second)
	if got := at(); got != order[0] {
		t.Fatalf("at the return time got %s; want the first choice %s again", got, order[0])
	}
	if p.Pick(nil) != -1 {
		t.Fatal("Pick(nil) should be -1")
	}
}

// Callers sent elsewhere by one failure come back spread over [ret, 2×ret).
func TestPickerReturnsSpreadOut(t *testing.T) {
	now := time.Unix(1000, 0)
	var backs []time.Duration
	for i := range 200 {
		p := NewPicker(fmt.Sprintf("w%d", i), time.Minute)
		p.now = func() time.Time { return now }
		p.Failed()
		backs = append(backs, p.backAt.Sub(now))
	}
	slices.Sort(backs)
	if backs[0] < time.Minute || backs[len(backs)-1] >= 2*time.Minute {
		t.Fatalf("returns span %v..%v; want within [1m, 2m)", backs[0], backs[len(backs)-1])
	}
	if spreadOver := backs[len(backs)-1] - backs[0]; spreadOver < 30*time.Second {
		t.Fatalf("returns spread over only %v; want most of a minute", spreadOver)
	}
}
