package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"

	"github.com/holdfast/holdfast/ca"
)

// ErrRPCRefused is a raft RPC a guarded connection refused: its header
// names another server than the peer's certificate, or the peer is no
// longer allowed to speak raft.
var ErrRPCRefused = errors.New("raft RPC refused")

// hashicorp/raft's NetworkTransport frames every request as one type byte
// followed by the request, msgpack-encoded as a map whose members are the
// struct's fields (RPCHeader's inlined). An InstallSnapshot request is
// followed by Size bytes of snapshot data.
const (
	rpcAppendEntries   = 0
	rpcRequestVote     = 1
	rpcInstallSnapshot = 2
	rpcTimeoutNow      = 3
	rpcRequestPreVote  = 4

	// maxRPCFrame bounds one request's encoding (not a snapshot's data).
	// The node bounds what one AppendEntries carries well below this.
	maxRPCFrame = 256 << 20
	// maxMsgpackDepth bounds nesting, so a hostile frame cannot recurse
	// without end.
	maxMsgpackDepth = 16
)

// raftGuard is an accepted raft connection that reads each request whole
// before raft does, and passes it on only if its header's server ID is the
// peer's certificate CN and check still allows the peer. Anything else
// closes the connection: raft never sees the request. Writes go straight
// through.
type raftGuard struct {
	net.Conn
	peer    ca.Identity
	check   func(ca.Identity) error
	log     *slog.Logger
	tracker *ConnTracker

	br  *bufio.Reader
	buf []byte // the current frame as read
	out []byte // checked bytes not yet returned to raft
	raw int64  // snapshot bytes to pass through unchecked
	err error

	closeOnce sync.Once
}

func newRaftGuard(c net.Conn, peer ca.Identity, check func(ca.Identity) error, log *slog.Logger, tracker *ConnTracker) *raftGuard {
	return &raftGuard{Conn: c, peer: peer, check: check, log: log, tracker: tracker, br: bufio.NewReaderSize(c, 64<<10)}
}

// Read returns checked bytes of the request stream.
func (g *raftGuard) Read(p []byte) (int, error) {
	for len(g.out) == 0 && g.raw == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if err := g.nextFrame(); err != nil {
			g.err = err
			if errors.Is(err, ErrRPCRefused) {
				g.log.Warn("transport: raft RPC refused; closing the connection", "peer", g.peer.NodeID, "remote", g.RemoteAddr().String(), "err", err)
				_ = g.Close()
			}
		}
	}
	if len(g.out) > 0 {
		n := copy(p, g.out)
		g.out = g.out[n:]
		return n, nil
	}
	if int64(len(p)) > g.raw {
		p = p[:g.raw]
	}
	n, err := g.br.Read(p)
	g.raw -= int64(n)
	return n, err
}

// Close closes the connection and forgets it.
func (g *raftGuard) Close() error {
	var err error
	g.closeOnce.Do(func() {
		g.tracker.remove(g)
		err = g.Conn.Close()
	})
	return err
}

// nextFrame reads one whole request into g.out, or fails.
func (g *raftGuard) nextFrame() error {
	g.buf = g.buf[:0]
	typ, err := g.br.ReadByte()
	if err != nil {
		return err
	}
	g.buf = append(g.buf, typ)
	switch typ {
	case rpcAppendEntries, rpcRequestVote, rpcInstallSnapshot, rpcTimeoutNow, rpcRequestPreVote:
	default:
		return fmt.Errorf("%w: unknown RPC type %d", ErrRPCRefused, typ)
	}
	w := msgWalker{r: g.br, buf: g.buf}
	id, size, err := w.request()
	g.buf = w.buf
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrRPCRefused, err)
	}
	if id == nil {
		return fmt.Errorf("%w: request names no server", ErrRPCRefused)
	}
	if string(id) != g.peer.NodeID {
		return fmt.Errorf("%w: request claims to come from %q, but the certificate is %s's", ErrRPCRefused, id, g.peer.NodeID)
	}
	if g.check != nil {
		if err := g.check(g.peer); err != nil {
			return fmt.Errorf("%w: %w", ErrRPCRefused, err)
		}
	}
	if typ == rpcInstallSnapshot {
		if size < 0 {
			return fmt.Errorf("%w: snapshot of %d bytes", ErrRPCRefused, size)
		}
		g.raw = size
	}
	g.out = g.buf
	return nil
}

// msgWalker reads one msgpack value from r, appending every byte it reads
// to buf.
type msgWalker struct {
	r   *bufio.Reader
	buf []byte
}

var errFrame = errors.New("malformed raft request")

func (w *msgWalker) read(n int) ([]byte, error) {
	if n < 0 || len(w.buf)+n > maxRPCFrame {
		return nil, fmt.Errorf("%w: too large", errFrame)
	}
	start := len(w.buf)
	w.buf = slices.Grow(w.buf, n)[:start+n]
	if _, err := io.ReadFull(w.r, w.buf[start:]); err != nil {
		return nil, err
	}
	return w.buf[start:], nil
}

func (w *msgWalker) byte() (byte, error) {
	b, err := w.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (w *msgWalker) uint(n int) (uint64, error) {
	b, err := w.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v, nil
}

// request reads a request map and returns its ID member (RPCHeader.ID)
// and its Size member (InstallSnapshot's), -1 if it has none.
func (w *msgWalker) request() (id []byte, size int64, err error) {
	size = -1
	n, err := w.mapLen()
	if err != nil {
		return nil, 0, err
	}
	for range n {
		key, err := w.str()
		if err != nil {
			return nil, 0, err
		}
		switch string(key) {
		case "ID":
			if id, err = w.str(); err != nil {
				return nil, 0, err
			}
			id = append([]byte(nil), id...)
		case "Size":
			v, err := w.int()
			if err != nil {
				return nil, 0, err
			}
			size = v
		default:
			if err := w.skip(0); err != nil {
				return nil, 0, err
			}
		}
	}
	return id, size, nil
}

func (w *msgWalker) mapLen() (int, error) {
	b, err := w.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case b >= 0x80 && b <= 0x8f:
		return int(b & 0x0f), nil
	case b == 0xde:
		v, err := w.uint(2)
		return int(v), err
	case b == 0xdf:
		v, err := w.uint(4)
		return int(v), err
	}
	return 0, fmt.Errorf("%w: request is not a map (0x%02x)", errFrame, b)
}

// str reads a string or binary value.
func (w *msgWalker) str() ([]byte, error) {
	b, err := w.byte()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case b >= 0xa0 && b <= 0xbf:
		n = uint64(b & 0x1f)
	case b == 0xc0: // nil
		return nil, nil
	case b == 0xd9 || b == 0xc4:
		n, err = w.uint(1)
	case b == 0xda || b == 0xc5:
		n, err = w.uint(2)
	case b == 0xdb || b == 0xc6:
		n, err = w.uint(4)
	default:
		return nil, fmt.Errorf("%w: want a string (0x%02x)", errFrame, b)
	}
	if err != nil {
		return nil, err
	}
	return w.read(int(n))
}

// int reads an integer value.
func (w *msgWalker) int() (int64, error) {
	b, err := w.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case b <= 0x7f:
		return int64(b), nil
	case b >= 0xe0:
		return int64(int8(b)), nil
	case b >= 0xcc && b <= 0xcf:
		v, err := w.uint(1 << (b - 0xcc))
		if v > 1<<62 {
			return 0, fmt.Errorf("%w: integer out of range", errFrame)
		}
		return int64(v), err
	case b >= 0xd0 && b <= 0xd3:
		size := 1 << (b - 0xd0)
		v, err := w.uint(size)
		shift := 64 - 8*size
		return int64(v<<shift) >> shift, err
	}
	return 0, fmt.Errorf("%w: want an integer (0x%02x)", errFrame, b)
}

// skip reads one value of any type.
func (w *msgWalker) skip(depth int) error {
	if depth > maxMsgpackDepth {
		return fmt.Errorf("%w: nested too deep", errFrame)
	}
	b, err := w.byte()
	if err != nil {
		return err
	}
	var n uint64 // bytes to skip
	var items uint64
	switch {
	case b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3:
		return nil
	case b >= 0x80 && b <= 0x8f:
		items = 2 * uint64(b&0x0f)
	case b >= 0x90 && b <= 0x9f:
		items = uint64(b & 0x0f)
	case b >= 0xa0 && b <= 0xbf:
		n = uint64(b & 0x1f)
	case b == 0xc4 || b == 0xd9:
		n, err = w.uint(1)
	case b == 0xc5 || b == 0xda:
		n, err = w.uint(2)
	case b == 0xc6 || b == 0xdb:
		n, err = w.uint(4)
	case b == 0xc7, b == 0xc8, b == 0xc9: // ext 8/16/32: length, type, data
		n, err = w.uint(1 << (b - 0xc7))
		n++
	case b == 0xca:
		n = 4
	case b == 0xcb:
		n = 8
	case b >= 0xcc && b <= 0xcf:
		n = 1 << (b - 0xcc)
	case b >= 0xd0 && b <= 0xd3:
		n = 1 << (b - 0xd0)
	case b >= 0xd4 && b <= 0xd8: // fixext: type and 1..16 bytes
		n = 1 + 1<<(b-0xd4)
	case b == 0xdc:
		items, err = w.uint(2)
	case b == 0xdd:
		items, err = w.uint(4)
	case b == 0xde:
		items, err = w.uint(2)
		items *= 2
	case b == 0xdf:
		items, err = w.uint(4)
		items *= 2
	default:
		return fmt.Errorf("%w: unknown msgpack type 0x%02x", errFrame, b)
	}
	if err != nil {
		return err
	}
	if n > 0 {
		if n > maxRPCFrame {
			return fmt.Errorf("%w: too large", errFrame)
		}
		if _, err := w.read(int(n)); err != nil {
			return err
		}
	}
	if items > maxRPCFrame {
		return fmt.Errorf("%w: too many items", errFrame)
	}
	for range items {
		if err := w.skip(depth + 1); err != nil {
			return err
		}
	}
	return nil
}
