package fsm

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/holdfast/holdfast/secrets"
)

// largeFSM is an FSM holding n secrets of 1 KiB, as in issue 9's memory
// and unlock figures.
func largeFSM(tb testing.TB, n int) *FSM {
	tb.Helper()
	f := New(nil)
	cmds := []Command{initCmd()}
	data := make([]byte, 1024)
	for i := range n {
		rand.Read(data)
		cmds = append(cmds, &SecretCreate{secrets.CreateCmd{ID: fmt.Sprintf("id%06d", i), Name: fmt.Sprintf("s%06d", i), Data: bytes.Clone(data), CreatedAt: t0}})
	}
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			tb.Fatal(err)
		}
		if r := f.Apply(&raft.Log{Index: f.Index() + 1, Type: raft.LogCommand, Data: b}).(*Result); r.Err != nil {
			tb.Fatal(r.Err)
		}
	}
	return f
}

func persisted(tb testing.TB, f *FSM) []byte {
	snap, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		tb.Fatal(err)
	}
	return sink.Bytes()
}

// BenchmarkSnapshot is what raft's FSM goroutine spends in Snapshot (Apply
// waits meanwhile), what Persist then spends, and what Restore spends on a
// snapshot of format 2 and of format 1 (JSON), for 30,000 secrets of 1 KiB.
func BenchmarkSnapshot(b *testing.B) {
	f := largeFSM(b, 30000)
	b.Run("Snapshot", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.Snapshot(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Snapshot+Persist", func(b *testing.B) {
		for b.Loop() {
			b.SetBytes(int64(len(persisted(b, f))))
		}
	})
	v1, _, err := f.SnapshotData()
	if err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"Restore": persisted(b, f), "RestoreFormat1": v1} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := New(nil).Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
