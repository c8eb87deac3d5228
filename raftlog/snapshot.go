package raftlog

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/failpoint"
	"github.com/holdfast/holdfast/internal/seal"
)

const (
	snapMagic      = "HFSNAP"
	snapVersion    = 0x01
	snapExt        = ".snap"
	snapTmpExt     = ".snap.tmp"
	snapDir        = "snapshots"
	maxSnapMetaLen = 1 << 20
	snapADLabel    = "holdfast/raftlog snapshot v1"
	// snapFixedHeader is magic, version, key ID and the meta length.
	snapFixedHeader = len(snapMagic) + 1 + seal.KeyIDSize + 4
)

// SnapshotStore is an encrypted raft.SnapshotStore. Each snapshot is one
// file <dir>/snapshots/<id>.snap: a clear header holding the snapshot's
// metadata, then the data sealed with the seal STREAM format under
// associated data binding the cluster ID and the whole header (format
// version, key ID, ID, index, term, configuration). See FORMAT.md.
type SnapshotStore struct {
	dir       string
	retain    int
	clusterID string
	keys      *Keyring
	log       *slog.Logger

	// sinks is held shared by every open sink, and exclusively while
	// snapshots are re-sealed, so no sink finishes under a retired key.
	sinks sync.RWMutex
	// mu serializes changes to the directory (finishing a sink, reaping,
	// replacing a file).
	mu sync.Mutex
}

var _ raft.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore returns a store keeping the newest retain snapshots
// under <dir>/snapshots. Unfinished snapshots left by a crash are removed.
func NewSnapshotStore(dir string, retain int, opts Options) (*SnapshotStore, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if retain < 1 {
		return nil, fmt.Errorf("raftlog: snapshot store: retain is %d; must be at least 1", retain)
	}
	s := &SnapshotStore{
		dir:       filepath.Join(dir, snapDir),
		retain:    retain,
		clusterID: opts.ClusterID,
		keys:      opts.Keys,
		log:       opts.logger(),
	}
	if err := mkdirDurable(s.dir); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	tmps, err := filepath.Glob(filepath.Join(s.dir, "*"+snapTmpExt))
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	for _, t := range tmps {
		if err := os.Remove(t); err != nil {
			return nil, fmt.Errorf("snapshot store: remove unfinished snapshot: %w", err)
		}
	}
	return s, nil
}

// Dir returns the directory holding the snapshot files.
func (s *SnapshotStore) Dir() string { return s.dir }

func (s *SnapshotStore) file(id string) string { return filepath.Join(s.dir, id+snapExt) }

// snapHeader encodes the clear header of a snapshot file.
func snapHeader(id seal.KeyID, meta *raft.SnapshotMeta) ([]byte, error) {
	m := *meta
	m.Size = 0 // derived from the file length
	js, err := json.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot meta: %w", err)
	}
	if len(js) > maxSnapMetaLen {
		return nil, fmt.Errorf("snapshot meta is %d bytes; at most %d", len(js), maxSnapMetaLen)
	}
	h := make([]byte, 0, snapFixedHeader+len(js))
	h = append(h, snapMagic...)
	h = append(h, snapVersion)
	h = append(h, id[:]...)
	h = binary.BigEndian.AppendUint32(h, uint32(len(js)))
	return append(h, js...), nil
}

// parsedSnapHeader is a snapshot file's clear header.
type parsedSnapHeader struct {
	raw   []byte // the header bytes, bound into the stream's ad
	keyID seal.KeyID
	meta  raft.SnapshotMeta
}

// readSnapHeader reads and parses a snapshot file's header from r.
func readSnapHeader(r io.Reader) (parsedSnapHeader, error) {
	fixed := make([]byte, snapFixedHeader)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return parsedSnapHeader{}, fmt.Errorf("%w: short header: %w", ErrTampered, err)
	}
	if !bytes.HasPrefix(fixed, []byte(snapMagic)) {
		return parsedSnapHeader{}, fmt.Errorf("%w: not a snapshot file", ErrTampered)
	}
	if v := fixed[len(snapMagic)]; v != snapVersion {
		return parsedSnapHeader{}, fmt.Errorf("%w: unknown snapshot version %#x", ErrTampered, v)
	}
	var h parsedSnapHeader
	copy(h.keyID[:], fixed[len(snapMagic)+1:])
	n := binary.BigEndian.Uint32(fixed[snapFixedHeader-4:])
	if n > maxSnapMetaLen {
		return parsedSnapHeader{}, fmt.Errorf("%w: meta length %d", ErrTampered, n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return parsedSnapHeader{}, fmt.Errorf("%w: short meta: %w", ErrTampered, err)
	}
	if err := json.Unmarshal(js, &h.meta); err != nil {
		return parsedSnapHeader{}, fmt.Errorf("%w: meta: %w", ErrTampered, err)
	}
	h.raw = append(fixed, js...)
	return h, nil
}

// snapAD is the associated data of a snapshot's stream.
func snapAD(clusterID string, header []byte) []byte {
	ad := make([]byte, 0, len(snapADLabel)+1+2+len(clusterID)+len(header))
	ad = append(ad, snapADLabel...)
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(clusterID)))
	ad = append(ad, clusterID...)
	return append(ad, header...)
}

// Create implements raft.SnapshotStore.
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version < raft.SnapshotVersionMin || version > raft.SnapshotVersionMax {
		return nil, fmt.Errorf("create snapshot: unsupported snapshot version %d", version)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	meta := raft.SnapshotMeta{
		Version:            version,
		ID:                 fmt.Sprintf("%d-%d-%d-%s", term, index, time.Now().UnixMilli(), hex.EncodeToString(suffix[:])),
		Index:              index,
		Term:               term,
		Configuration:      configuration,
		ConfigurationIndex: configurationIndex,
	}
	s.sinks.RLock()
	sk, err := s.newSink(&meta)
	if err != nil {
		s.sinks.RUnlock()
		return nil, fmt.Errorf("create snapshot %s: %w", meta.ID, err)
	}
	return sk, nil
}

func (s *SnapshotStore) newSink(meta *raft.SnapshotMeta) (*sink, error) {
	k := s.keys.Current()
	hdr, err := snapHeader(k.ID(), meta)
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(s.dir, meta.ID+snapTmpExt)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	sw, err := writeSnapHeader(bw, k, s.clusterID, hdr)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	return &sink{store: s, meta: *meta, tmp: tmp, f: f, bw: bw, sw: sw}, nil
}

func writeSnapHeader(w io.Writer, k seal.Key, clusterID string, hdr []byte) (io.WriteCloser, error) {
	if _, err := w.Write(hdr); err != nil {
		return nil, err
	}
	return seal.NewWriter(k, w, snapAD(clusterID, hdr))
}

// sink is a snapshot being written. It holds store.sinks shared until
// Close or Cancel.
type sink struct {
	store *SnapshotStore
	meta  raft.SnapshotMeta
	tmp   string
	f     *os.File
	bw    *bufio.Writer
	sw    io.WriteCloser
	done  bool
}

func (k *sink) ID() string { return k.meta.ID }

func (k *sink) Write(p []byte) (int, error) {
	if k.done {
		return 0, errors.New("write to finished snapshot")
	}
	return k.sw.Write(p)
}

// Close seals the last chunk, syncs the file, and publishes it.
func (k *sink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	defer k.store.sinks.RUnlock()
	err := k.sw.Close()
	if err == nil {
		err = k.bw.Flush()
	}
	if err == nil {
		err = k.f.Sync()
	}
	if cerr := k.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = k.store.publish(k.tmp, k.meta.ID)
	}
	if err != nil {
		_ = os.Remove(k.tmp)
		return fmt.Errorf("finish snapshot %s: %w", k.meta.ID, err)
	}
	return nil
}

// Cancel discards the snapshot.
func (k *sink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	defer k.store.sinks.RUnlock()
	_ = k.f.Close()
	if err := os.Remove(k.tmp); err != nil {
		return fmt.Errorf("cancel snapshot %s: %w", k.meta.ID, err)
	}
	return nil
}

// publish renames a finished temporary file into place and reaps old snapshots.
func (s *SnapshotStore) publish(tmp, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	failpoint.Hit(failpoint.SnapshotSynced)
	if err := os.Rename(tmp, s.file(id)); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	failpoint.Hit(failpoint.SnapshotPublished)
	return s.reapLocked()
}

// reapLocked removes all but the newest retain snapshots. s.mu must be held.
func (s *SnapshotStore) reapLocked() error {
	metas, err := s.listLocked()
	if err != nil {
		return err
	}
	for _, m := range metas[min(len(metas), s.retain):] {
		if err := os.Remove(s.file(m.ID)); err != nil {
			return fmt.Errorf("reap snapshot %s: %w", m.ID, err)
		}
		s.log.Info("reaped snapshot", "id", m.ID)
	}
	return nil
}

// List implements raft.SnapshotStore: the snapshots, newest first. A file
// whose header cannot be read is skipped with a warning, so raft falls
// back to older snapshots; opening it reports the error.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked()
}

func (s *SnapshotStore) listLocked() ([]*raft.SnapshotMeta, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var metas []*raft.SnapshotMeta
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), snapExt)
		if !ok || e.IsDir() {
			continue
		}
		h, size, err := s.statSnapshot(id)
		if err != nil {
			s.log.Warn("skipping unreadable snapshot", "id", id, "err", err)
			continue
		}
		m := h.meta
		m.Size = size
		metas = append(metas, &m)
	}
	slices.SortFunc(metas, func(a, b *raft.SnapshotMeta) int {
		switch {
		case a.Term != b.Term:
			return cmpDesc(a.Term, b.Term)
		case a.Index != b.Index:
			return cmpDesc(a.Index, b.Index)
		default:
			return strings.Compare(b.ID, a.ID)
		}
	})
	return metas, nil
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}

// statSnapshot reads a snapshot's header and derives its plaintext size.
func (s *SnapshotStore) statSnapshot(id string) (parsedSnapHeader, int64, error) {
	f, err := os.Open(s.file(id))
	if err != nil {
		return parsedSnapHeader{}, 0, err
	}
	defer f.Close()
	h, err := readSnapHeader(bufio.NewReader(f))
	if err != nil {
		return parsedSnapHeader{}, 0, err
	}
	if h.meta.ID != id {
		return parsedSnapHeader{}, 0, fmt.Errorf("%w: file %s holds snapshot %s", ErrTampered, id, h.meta.ID)
	}
	fi, err := f.Stat()
	if err != nil {
		return parsedSnapHeader{}, 0, err
	}
	size, err := seal.StreamPlaintextSize(fi.Size() - int64(len(h.raw)))
	if err != nil {
		return parsedSnapHeader{}, 0, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	return h, size, nil
}

// Open implements raft.SnapshotStore. It authenticates the whole snapshot
// before returning, so the reader never yields data from a snapshot that
// is truncated or tampered with; errors are *SnapshotError.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	path := s.file(id)
	fail := func(err error) (*raft.SnapshotMeta, io.ReadCloser, error) {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w: %w", ErrSnapshotNotFound, err)
		}
		return nil, nil, &SnapshotError{Path: path, ID: id, Err: err}
	}
	if strings.ContainsAny(id, `/\`) || id == "" || id == "." || id == ".." {
		return fail(fmt.Errorf("%w: bad snapshot ID %q", ErrSnapshotNotFound, id))
	}
	h, size, err := s.statSnapshot(id)
	if err != nil {
		return fail(err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	// First pass: authenticate everything. Second pass: serve it.
	if err := s.verify(f, h); err != nil {
		_ = f.Close()
		return fail(err)
	}
	r, err := s.openStream(f, h)
	if err != nil {
		_ = f.Close()
		return fail(err)
	}
	meta := h.meta
	meta.Size = size
	return &meta, &snapReader{r: r, f: f, path: path, id: id}, nil
}

func (s *SnapshotStore) verify(f *os.File, h parsedSnapHeader) error {
	r, err := s.openStream(f, h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return streamErr(err)
	}
	return nil
}

// openStream positions f after the header and returns the stream reader.
func (s *SnapshotStore) openStream(f *os.File, h parsedSnapHeader) (io.Reader, error) {
	if _, err := f.Seek(int64(len(h.raw)), io.SeekStart); err != nil {
		return nil, err
	}
	k, ok := s.keys.Lookup(h.keyID)
	if !ok {
		return nil, fmt.Errorf("%w: key %v", ErrUnknownKey, h.keyID)
	}
	r, err := seal.NewReader(k, bufio.NewReaderSize(f, 256<<10), snapAD(s.clusterID, h.raw))
	if err != nil {
		return nil, streamErr(err)
	}
	return r, nil
}

// streamErr marks stream authentication failures as ErrTampered.
func streamErr(err error) error {
	for _, e := range []error{seal.ErrOpen, seal.ErrTruncated, seal.ErrTrailingData, seal.ErrHeader} {
		if errors.Is(err, e) {
			return fmt.Errorf("%w: %w", ErrTampered, err)
		}
	}
	return err
}

type snapReader struct {
	r    io.Reader
	f    *os.File
	path string
	id   string
}

func (r *snapReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &SnapshotError{Path: r.path, ID: r.id, Err: streamErr(err)}
	}
	return n, err
}

func (r *snapReader) Close() error { return r.f.Close() }

// reseal re-seals under the current key every snapshot sealed under
// another key. It waits for open sinks to finish and blocks new ones.
func (s *SnapshotStore) reseal() error {
	s.sinks.Lock()
	defer s.sinks.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	metas, err := s.listLocked()
	if err != nil {
		return err
	}
	cur := s.keys.Current()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("reseal snapshots: %w", err)
	}
	listed := map[string]bool{}
	for _, m := range metas {
		listed[m.ID] = true
	}
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), snapExt); ok && !listed[id] {
			// Unreadable header: it cannot be re-sealed, and it must not
			// keep old-key ciphertext around. Report it.
			return &SnapshotError{Path: s.file(id), ID: id, Err: fmt.Errorf("%w: unreadable header", ErrTampered)}
		}
	}
	for _, m := range metas {
		if err := s.resealOne(m.ID, cur); err != nil {
			return err
		}
	}
	return nil
}

func (s *SnapshotStore) resealOne(id string, cur seal.Key) (err error) {
	path := s.file(id)
	h, _, err := s.statSnapshot(id)
	if err != nil {
		return &SnapshotError{Path: path, ID: id, Err: err}
	}
	if h.keyID == cur.ID() {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return &SnapshotError{Path: path, ID: id, Err: err}
	}
	defer src.Close()
	r, err := s.openStream(src, h)
	if err != nil {
		return &SnapshotError{Path: path, ID: id, Err: err}
	}
	tmp := filepath.Join(s.dir, id+snapTmpExt)
	dst, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = dst.Close()
			_ = os.Remove(tmp)
		}
	}()
	hdr, err := snapHeader(cur.ID(), &h.meta)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(dst, 256<<10)
	sw, err := writeSnapHeader(bw, cur, s.clusterID, hdr)
	if err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	if _, err := io.Copy(sw, r); err != nil {
		return &SnapshotError{Path: path, ID: id, Err: streamErr(err)}
	}
	if err := sw.Close(); err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("reseal snapshot %s: %w", id, err)
	}
	failpoint.Hit(failpoint.SnapshotResealed)
	s.log.Info("re-sealed snapshot", "id", id, "key", cur.ID().String())
	return nil
}

// Verify authenticates every snapshot file in the store, whole, and returns
// the first that fails as a *SnapshotError. List skips unreadable files (so
// raft can go on with an older snapshot); a node checks with Verify at
// start instead, so a damaged snapshot stops it with an error naming the
// file rather than being silently ignored.
func (s *SnapshotStore) Verify() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), snapExt)
		if !ok || e.IsDir() {
			continue
		}
		_, rc, err := s.Open(id)
		if err != nil {
			return err
		}
		rc.Close()
	}
	return nil
}
