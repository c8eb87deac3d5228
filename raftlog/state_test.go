package raftlog

import (
	"slices"
	"testing"
)

// TestLogStateRuns: the runs follow stores and deletes, merge when they
// touch, and past maxRuns the oldest is dropped below a rising floor.
func TestLogStateRuns(t *testing.T) {
	var st logState
	st = st.add(1, 10).add(11, 12).add(20, 25).remove(5, 6).remove(24, 30)
	if want := []run{{1, 4}, {7, 12}, {20, 23}}; !slices.Equal(st.runs, want) {
		t.Fatalf("runs = %v; want %v", st.runs, want)
	}
	st = st.add(3, 21)
	if want := []run{{1, 23}}; !slices.Equal(st.runs, want) {
		t.Fatalf("runs after a covering add = %v; want %v", st.runs, want)
	}
	st = logState{}
	for i := range uint64(maxRuns + 2) {
		st = st.add(10*i+1, 10*i+5)
	}
	if len(st.runs) != maxRuns || st.floor != st.runs[0].lo || st.runs[0].lo != 21 {
		t.Fatalf("after %d runs: %d runs from %d, floor %d; want %d from 21, floor 21", maxRuns+2, len(st.runs), st.runs[0].lo, st.floor, maxRuns)
	}
	st = st.add(1, 30)               // below the floor: untracked
	if st.runs[0] != (run{21, 35}) { // 21..30 joins 21..25 and 31..35
		t.Fatalf("an add reaching below the floor gave %v; want 21..35", st.runs[0])
	}
	if got, err := parseLogState(st.marshal()); err != nil || !slices.Equal(got.runs, st.runs) || got.floor != st.floor {
		t.Fatalf("marshal then parse: %v, %v", got, err)
	}
}
