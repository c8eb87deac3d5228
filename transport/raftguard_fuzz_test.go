package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// encodeRPC frames req as raft's NetworkTransport does: a type byte, then
// the request in msgpack.
func encodeRPC(t testing.TB, typ byte, req any) []byte {
	var b bytes.Buffer
	b.WriteByte(typ)
	if err := codec.NewEncoder(&b, &codec.MsgpackHandle{}).Encode(req); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzRaftFrame feeds the raft guard's frame reader anything: it never
// panics, and what it accepts it accepts whole — the bytes it passes on
// are exactly the frame it read, and it names the ID in its header.
func FuzzRaftFrame(f *testing.F) {
	h := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("node-a"), Addr: []byte("127.0.0.1:1")}
	f.Add(encodeRPC(f, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: h, Term: 3,
		Entries: []*raft.Log{{Index: 1, Term: 3, Type: raft.LogCommand, Data: []byte("x")}}}))
	f.Add(encodeRPC(f, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: h, Term: 4}))
	f.Add(encodeRPC(f, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: h, Term: 4, Size: 3}))
	f.Add([]byte{rpcTimeoutNow, 0x81, 0xa2, 'I', 'D', 0xc4, 0x01, 'a'})
	f.Add([]byte{rpcAppendEntries, 0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		r := bufio.NewReader(bytes.NewReader(data[1:]))
		w := msgWalker{r: r, buf: []byte{data[0]}}
		id, size, err := w.request()
		if err != nil {
			if !errors.Is(err, errFrame) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v is neither a malformed frame nor a short read", err)
			}
			return
		}
		if !bytes.Equal(w.buf, data[:len(w.buf)]) {
			t.Fatal("the bytes passed on differ from the bytes read")
		}
		if id != nil && !bytes.Contains(w.buf, id) {
			t.Fatalf("ID %q is not in the frame", id)
		}
		_ = size
	})
}

// TestRaftFrameReadsRealRequests: every request type raft sends is read
// whole, with its header's ID, and an InstallSnapshot's size.
func TestRaftFrameReadsRealRequests(t *testing.T) {
	h := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("node-a"), Addr: []byte("127.0.0.1:1")}
	for _, tc := range []struct {
		typ  byte
		req  any
		size int64
	}{
		{rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: h, Term: 3, Entries: []*raft.Log{{Index: 1, Term: 3, Type: raft.LogCommand, Data: bytes.Repeat([]byte("x"), 5000), Extensions: []byte("e")}}}, -1},
		{rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: h, Term: 4, LastLogIndex: 1 << 40}, -1},
		{rpcRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: h, Term: 4}, -1},
		{rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: h}, -1},
		{rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: h, Term: 4, Size: 123456, Configuration: []byte("cfg")}, 123456},
	} {
		frame := encodeRPC(t, tc.typ, tc.req)
		trailing := append(append([]byte(nil), frame...), 0xAA) // the next frame's first byte
		w := msgWalker{r: bufio.NewReader(bytes.NewReader(trailing[1:])), buf: []byte{tc.typ}}
		id, size, err := w.request()
		if err != nil || string(id) != "node-a" || size != tc.size || !bytes.Equal(w.buf, frame) {
			t.Errorf("type %d: id %q, size %d, %d of %d bytes, %v", tc.typ, id, size, len(w.buf), len(frame), err)
		}
	}
}
