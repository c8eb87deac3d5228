package integration

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The sequential specification of the secret store, for porcupine.
//
// The store is a map name → {exists, id, labels}. Operations on different
// names commute, so the model is P-compositional: the history is
// partitioned by name, and each partition's state is the one entry of
// that map for that name (secretState), which keeps states comparable with
// == and the check fast.

// secretOpKind is what a client asked for.
type secretOpKind int

const (
	opCreate secretOpKind = iota
	opInspect
	opRemove
	opLabels
)

func (k secretOpKind) String() string {
	return [...]string{"create", "inspect", "rm", "labels"}[k]
}

// secretInput is an operation's input. Labels is canonical (labelString).
type secretInput struct {
	Op     secretOpKind `json:"op"`
	Name   string       `json:"name"`
	Labels string       `json:"labels,omitempty"`
}

// secretOutput is an operation's outcome.
type secretOutput struct {
	// Unknown: the outcome is not known (a timeout, a 503 "may or may not
	// have been applied", a broken connection). The model accepts it as
	// applied where it can apply, and the checker may place it after
	// every other operation, which is the same as not applied.
	Unknown bool `json:"unknown,omitempty"`
	// OK: a write was applied; for inspect, the secret exists.
	OK bool `json:"ok"`
	// Status is the error status of a write that was refused (404, 409).
	Status int `json:"status,omitempty"`
	// ID is what create returned, or what inspect read.
	ID string `json:"id,omitempty"`
	// Labels is what inspect read (canonical).
	Labels string `json:"labels,omitempty"`
	// Err is the error text, for the record only.
	Err string `json:"err,omitempty"`
}

// secretState is one name's entry. ID "" with Exists means a create whose
// answer was lost: any ID matches, and the first read binds it.
type secretState struct {
	Exists bool
	ID     string
	Labels string
}

// labelString is the canonical form of a label set.
func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// stepSecret is the model's transition function.
func stepSecret(st secretState, in secretInput, out secretOutput) (bool, secretState) {
	switch in.Op {
	case opCreate:
		switch {
		case out.Unknown && st.Exists:
			return true, st // it could only have been refused
		case out.Unknown:
			return true, secretState{Exists: true, Labels: in.Labels}
		case out.OK:
			return !st.Exists, secretState{Exists: true, ID: out.ID, Labels: in.Labels}
		default: // 409: the name is taken
			return st.Exists, st
		}
	case opRemove:
		switch {
		case out.Unknown:
			return true, secretState{}
		case out.OK:
			return st.Exists, secretState{}
		default: // 404
			return !st.Exists, st
		}
	case opLabels:
		switch {
		case out.Unknown:
			if st.Exists {
				st.Labels = in.Labels
			}
			return true, st
		case out.OK:
			if !st.Exists {
				return false, st
			}
			st.Labels = in.Labels
			return true, st
		default: // 404
			return !st.Exists, st
		}
	case opInspect:
		if out.OK != st.Exists {
			return false, st
		}
		if !st.Exists {
			return true, st
		}
		if out.Labels != st.Labels {
			return false, st
		}
		if st.ID == "" {
			st.ID = out.ID
			return true, st
		}
		return st.ID == out.ID, st
	}
	return false, st
}

func describeSecretOp(input, output any) string {
	in, out := input.(secretInput), output.(secretOutput)
	call := fmt.Sprintf("%s(%s)", in.Op, in.Name)
	if in.Op == opCreate || in.Op == opLabels {
		call = fmt.Sprintf("%s(%s, {%s})", in.Op, in.Name, in.Labels)
	}
	switch {
	case out.Unknown:
		return call + " -> ?"
	case in.Op == opInspect && out.OK:
		return fmt.Sprintf("%s -> %s {%s}", call, short(out.ID), out.Labels)
	case in.Op == opInspect:
		return call + " -> absent"
	case in.Op == opCreate && out.OK:
		return fmt.Sprintf("%s -> %s", call, short(out.ID))
	case out.OK:
		return call + " -> ok"
	default:
		return fmt.Sprintf("%s -> %d", call, out.Status)
	}
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// secretModel is the porcupine model of the secret store, partitioned by
// name.
var secretModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var names []string
		for _, op := range history {
			n := op.Input.(secretInput).Name
			if _, ok := by[n]; !ok {
				names = append(names, n)
			}
			by[n] = append(by[n], op)
		}
		out := make([][]porcupine.Operation, len(names))
		for i, n := range names {
			out[i] = by[n]
		}
		return out
	},
	PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
		// A return event carries no input: find each id's name at its call.
		name := map[int]string{}
		by := map[string][]porcupine.Event{}
		var names []string
		for _, ev := range history {
			if ev.Kind == porcupine.CallEvent {
				name[ev.Id] = ev.Value.(secretInput).Name
			}
			n := name[ev.Id]
			if _, ok := by[n]; !ok {
				names = append(names, n)
			}
			by[n] = append(by[n], ev)
		}
		out := make([][]porcupine.Event, len(names))
		for i, n := range names {
			out[i] = by[n]
		}
		return out
	},
	Init: func() any { return secretState{} },
	Step: func(state, input, output any) (bool, any) {
		return stepSecret(state.(secretState), input.(secretInput), output.(secretOutput))
	},
	DescribeOperation: describeSecretOp,
	DescribeState: func(state any) string {
		st := state.(secretState)
		if !st.Exists {
			return "absent"
		}
		id := short(st.ID)
		if id == "" {
			id = "?"
		}
		return fmt.Sprintf("%s {%s}", id, st.Labels)
	},
}

// op is a shorthand for hand-made histories.
func op(client int, call, ret int64, in secretInput, out secretOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

// The checker accepts what it must and rejects what it must: a model that
// accepts everything would make the chaos suite pass vacuously.
func TestChaosModelChecker(t *testing.T) {
	create := func(name, labels string) secretInput { return secretInput{Op: opCreate, Name: name, Labels: labels} }
	inspect := func(name string) secretInput { return secretInput{Op: opInspect, Name: name} }
	rm := func(name string) secretInput { return secretInput{Op: opRemove, Name: name} }
	labels := func(name, l string) secretInput { return secretInput{Op: opLabels, Name: name, Labels: l} }
	ok := func(id string) secretOutput { return secretOutput{OK: true, ID: id} }
	found := func(id, l string) secretOutput { return secretOutput{OK: true, ID: id, Labels: l} }
	absent := secretOutput{}
	status := func(s int) secretOutput { return secretOutput{Status: s} }
	unknown := secretOutput{Unknown: true}
	const never = 1 << 40 // after the end of every history here

	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"create then read", []porcupine.Operation{
			op(0, 0, 10, create("a", "v=1"), ok("id1")),
			op(1, 20, 30, inspect("a"), found("id1", "v=1")),
		}, porcupine.Ok},
		{"read misses an acknowledged create", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(1, 20, 30, inspect("a"), absent),
		}, porcupine.Illegal},
		{"read concurrent with a create may miss it", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(1, 5, 30, inspect("a"), absent),
		}, porcupine.Ok},
		{"stale read after an acknowledged rm", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(0, 20, 30, rm("a"), ok("")),
			op(1, 40, 50, inspect("a"), found("id1", "")),
		}, porcupine.Illegal},
		{"read of old labels after an acknowledged update", []porcupine.Operation{
			op(0, 0, 10, create("a", "v=1"), ok("id1")),
			op(0, 20, 30, labels("a", "v=2"), ok("")),
			op(1, 40, 50, inspect("a"), found("id1", "v=1")),
		}, porcupine.Illegal},
		{"read of an id nobody created", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(1, 20, 30, inspect("a"), found("id2", "")),
		}, porcupine.Illegal},
		{"two acknowledged creates of one name", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(1, 20, 30, create("a", ""), ok("id2")),
		}, porcupine.Illegal},
		{"409 on an absent name", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), status(409)),
		}, porcupine.Illegal},
		{"404 on rm of a present name", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(1, 20, 30, rm("a"), status(404)),
		}, porcupine.Illegal},
		{"a read flips back and forth", []porcupine.Operation{
			op(0, 0, 100, create("a", ""), ok("id1")),
			op(1, 10, 20, inspect("a"), found("id1", "")),
			op(2, 30, 40, inspect("a"), absent),
		}, porcupine.Illegal},
		{"unknown create that happened", []porcupine.Operation{
			op(0, 0, never, create("a", "v=1"), unknown),
			op(1, 20, 30, inspect("a"), found("id9", "v=1")),
			op(1, 40, 50, inspect("a"), found("id9", "v=1")),
		}, porcupine.Ok},
		{"unknown create that did not happen", []porcupine.Operation{
			op(0, 0, never, create("a", "v=1"), unknown),
			op(1, 20, 30, inspect("a"), absent),
		}, porcupine.Ok},
		{"unknown create read under two ids", []porcupine.Operation{
			op(0, 0, never, create("a", ""), unknown),
			op(1, 20, 30, inspect("a"), found("id8", "")),
			op(1, 40, 50, inspect("a"), found("id9", "")),
		}, porcupine.Illegal},
		{"unknown rm seen, then unseen", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(0, 20, never, rm("a"), unknown),
			op(1, 30, 40, inspect("a"), absent),
			op(1, 50, 60, inspect("a"), found("id1", "")),
		}, porcupine.Illegal},
		{"names are independent", []porcupine.Operation{
			op(0, 0, 10, create("a", ""), ok("id1")),
			op(1, 0, 10, create("b", ""), ok("id2")),
			op(2, 20, 30, inspect("b"), found("id2", "")),
			op(2, 40, 50, inspect("a"), absent),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := porcupine.CheckOperationsVerbose(secretModel, tt.history, 10*time.Second)
			if got != tt.want {
				t.Errorf("got %s; want %s", got, tt.want)
			}
		})
	}
}
