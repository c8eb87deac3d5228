package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/secrets"
)

func mustEncode(t *testing.T, c Command) []byte {
	t.Helper()
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func secretCmd(id, name string) *SecretCreate {
	return &SecretCreate{secrets.CreateCmd{ID: id, Name: name, Data: []byte("v-" + id), CreatedAt: time.Unix(100, 0).UTC()}}
}

// TestBatchAppliesEachCommandInTurn: a batch entry applies its commands
// one after the other, each with its own result, exactly as separate
// entries would; a failed command changes nothing and stops no other.
func TestBatchAppliesEachCommandInTurn(t *testing.T) {
	batched, single := New(nil), New(nil)
	for _, f := range []*FSM{batched, single} {
		if errs := applyAll(t, f, initCmd()); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	cmds := []Command{secretCmd("s1", "a"), secretCmd("s2", "a"), secretCmd("s3", "b"), &SecretRemove{secrets.RemoveCmd{Ref: "nope"}}, &SecretRemove{secrets.RemoveCmd{Ref: "b"}}}
	enc := make([][]byte, len(cmds))
	for i, c := range cmds {
		enc[i] = mustEncode(t, c)
	}
	b, err := EncodeBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	res := batched.Apply(&raft.Log{Index: batched.Index() + 1, Type: raft.LogCommand, Data: b}).(*Result)
	want := applyAll(t, single, cmds...)
	if res.Err != nil || len(res.Batch) != len(cmds) {
		t.Fatalf("batch result: err %v, %d results; want %d", res.Err, len(res.Batch), len(cmds))
	}
	for i := range cmds {
		if got := res.Batch[i].Err; (got == nil) != (want[i] == nil) || got != nil && got.Error() != want[i].Error() {
			t.Errorf("command %d: %v; as its own entry: %v", i, got, want[i])
		}
	}
	if want[0] != nil || want[1] == nil || want[3] == nil || want[4] != nil {
		t.Fatalf("the commands do not test what they should: %v", want)
	}
	if !bytes.Equal(stripIndex(snapshotBytes(t, batched)), stripIndex(snapshotBytes(t, single))) {
		t.Error("the state after the batch differs from the state after the same commands one by one")
	}
}

// TestBatchEncoding: a batch round-trips and tools can show it; what no
// writer makes is refused.
func TestBatchEncoding(t *testing.T) {
	a, nu := mustEncode(t, secretCmd("s1", "a")), mustEncode(t, &NodeUpdate{ID: "n", GossipAddr: "10.0.0.1:1"})
	b, err := EncodeBatch([][]byte{a, nu})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got := c.(*Batch)
	if len(got.Commands) != 2 || !reflect.DeepEqual(got.Commands[0], secretCmd("s1", "a")) {
		t.Fatalf("decoded %#v", got.Commands)
	}
	if again := mustEncode(t, got); !bytes.Equal(again, b) {
		t.Errorf("Encode of the decoded batch differs from EncodeBatch")
	}
	name, body, err := Describe(b)
	if err != nil || name != "batch" || !strings.Contains(string(body), `"command":"secret.create"`) || !strings.Contains(string(body), `"command":"node.update"`) {
		t.Errorf("Describe = %q, %s, %v", name, body, err)
	}
	if len(b) > BatchSize(2, len(a)+len(nu)) {
		t.Errorf("BatchSize(2, %d) = %d, but the batch is %d bytes", len(a)+len(nu), BatchSize(2, len(a)+len(nu)), len(b))
	}

	header := b[:headerLen]
	frame := func(parts ...[]byte) []byte {
		out := append([]byte(nil), header...)
		for _, p := range parts {
			out = binary.AppendUvarint(out, uint64(len(p)))
			out = append(out, p...)
		}
		return out
	}
	nonMinimal := append(append(append([]byte(nil), header...), byte(len(a))|0x80, byte(len(a)>>7)|0x80, 0), a...)
	for name, data := range map[string][]byte{
		"empty":              frame(),
		"nested":             frame(a, b),
		"length past end":    append(append([]byte(nil), header...), 0x7f, 1, 2),
		"bad command":        frame(a, []byte{1, 0, 99, 1}),
		"non-minimal length": nonMinimal,
		"trailing byte":      append(frame(a), 5),
	} {
		if _, err := Decode(data); !errors.Is(err, ErrMalformedCommand) {
			t.Errorf("%s: %v, want ErrMalformedCommand", name, err)
		}
	}
	if _, err := EncodeBatch([][]byte{a, b}); !errors.Is(err, ErrNestedBatch) {
		t.Errorf("EncodeBatch of a batch: %v", err)
	}
	if _, err := EncodeBatch(nil); err == nil {
		t.Error("EncodeBatch of nothing succeeded")
	}
	big := mustEncode(t, &SecretCreate{secrets.CreateCmd{ID: "big", Name: "big", Data: make([]byte, MaxCommandSize/2), CreatedAt: time.Unix(1, 0)}})
	if _, err := EncodeBatch([][]byte{big, big}); !errors.Is(err, ErrCommandTooLarge) {
		t.Errorf("a batch over MaxCommandSize: %v", err)
	}
}

// TestBatchEntryThatCannotBeReadAppliesNothing: an entry the FSM cannot
// decode is one error for the whole entry.
func TestBatchEntryThatCannotBeReadAppliesNothing(t *testing.T) {
	f := New(nil)
	applyAll(t, f, initCmd())
	a := mustEncode(t, secretCmd("s1", "a"))
	bad := append(mustEncode(t, secretCmd("s2", "b")), 0) // nothing writes a secret.create with a stray byte...
	bad = bad[:len(bad)-1]
	b, _ := EncodeBatch([][]byte{a, bad})
	b = b[:len(b)-1] // cut: the last command's length now runs past the end
	res := f.Apply(&raft.Log{Index: f.Index() + 1, Type: raft.LogCommand, Data: b}).(*Result)
	if res.Err == nil || res.Batch != nil {
		t.Fatalf("result %+v, want one error for the entry", res)
	}
	var n int
	f.Read(func(s *State, _ uint64) { n = len(s.Secrets.List()) })
	if n != 0 {
		t.Errorf("%d secrets after a refused batch, want 0", n)
	}
}
