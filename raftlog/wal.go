package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
)

// The write-ahead file. A bolt commit costs two fdatasyncs (pages, then
// the meta page) and several writes; raft waits for one on the leader and
// one on a follower in series for every write. So StoreLogs appends the
// sealed batch to raft.wal with one write and one fdatasync, and a
// background flusher moves entries into raft.db in large batches, after
// which the WAL is reset. Only sealed records ever reach either file.
// Format: FORMAT.md, section 1.1.

// WALFile is the name of the write-ahead file next to DBFile.
const WALFile = "raft.wal"

const (
	// walMagic starts the header this release writes (version 2: a sealed
	// claim follows it); walMagicV1 the previous release's, still read.
	walMagic   = "HFWAL\x00\x02\n"
	walMagicV1 = "HFWAL\x00\x01\n"
	// walHeaderSize is magic || uint64(generation) || crc32c.
	walHeaderSize = len(walMagic) + 8 + 4
	// walClaimSize is the sealed claim after a version 2 header:
	// version || key_id || nonce || seal(prev_last || last || last_term).
	walClaimSize = 1 + 8 + 24 + 24 + 16
	// walDataStart is where records start: the header has a block of its own.
	walDataStart = 4096
	// walRecordHeaderSize is mark || uint64(generation) || uint32(len) || crc32c.
	walRecordHeaderSize = 1 + 8 + 4 + 4
	// walMark starts a record; walMarkLast starts the last record of a
	// batch (one write, one fdatasync).
	walMark     = 0xa7
	walMarkLast = 0xa8
	// walEntryFixed is index || term || type || appended_at (12).
	walEntryFixed = 8 + 8 + 1 + 12
	// walMaxRecord bounds one record's payload; StoreLogs refuses an entry
	// whose record would be larger.
	walMaxRecord = 64 << 20
	// walGrowStep is how much zero-filled space the file grows by, so that
	// an append overwrites allocated blocks and fdatasync need not commit
	// a new file size.
	walGrowStep = 1 << 20
	// DefaultWALSize is the WAL's capacity: an append that would pass it
	// first moves everything into raft.db and starts the WAL over.
	DefaultWALSize = 32 << 20
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

// claimFunc seals the claim of a generation: the log ended at prevLast
// before the generation's latest batch and at last (of term lastTerm)
// after it; all zero for a generation with no batch yet.
type claimFunc func(gen, prevLast, last, lastTerm uint64) []byte

// wal is an open write-ahead file. It is not safe for concurrent use; the
// Store guards it with walMu.
type wal struct {
	f        *os.File
	path     string
	gen      uint64 // generation of the records being appended
	off      int64  // where the next record goes
	last     uint64 // index of the last record of this generation, if off > walDataStart
	size     int64  // bytes of the file known to be allocated
	capacity int64
	buf      []byte
	claim    claimFunc
	// dirty means a write or reset failed, so what follows off is in
	// doubt: the WAL must start over before anything is appended.
	dirty bool
}

// walHeader encodes the file header of generation gen: version 2 with
// its claim, or version 1 (the previous release's) when claim is nil.
func walHeader(gen uint64, claim []byte) []byte {
	h := make([]byte, 0, walHeaderSize+len(claim))
	if claim == nil {
		h = append(h, walMagicV1...)
	} else {
		h = append(h, walMagic...)
	}
	h = binary.BigEndian.AppendUint64(h, gen)
	h = binary.BigEndian.AppendUint32(h, crc32.Checksum(h, walCRC))
	return append(h, claim...)
}

// parseWALHeader returns the generation and format version in a file's
// first bytes, and for version 2 the claim.
func parseWALHeader(b []byte) (gen uint64, version byte, claim []byte, err error) {
	if len(b) < walHeaderSize {
		return 0, 0, nil, fmt.Errorf("%w: not a holdfast WAL header", ErrTampered)
	}
	switch string(b[:len(walMagic)]) {
	case walMagic:
		version = 2
	case walMagicV1:
		version = 1
	default:
		return 0, 0, nil, fmt.Errorf("%w: not a holdfast WAL header", ErrTampered)
	}
	body := b[:walHeaderSize-4]
	if crc32.Checksum(body, walCRC) != binary.BigEndian.Uint32(b[walHeaderSize-4:]) {
		return 0, 0, nil, fmt.Errorf("%w: WAL header checksum mismatch", ErrTampered)
	}
	gen = binary.BigEndian.Uint64(b[len(walMagic):])
	if version == 2 {
		if len(b) < walHeaderSize+walClaimSize {
			return 0, 0, nil, fmt.Errorf("%w: WAL header has no claim", ErrTampered)
		}
		claim = b[walHeaderSize : walHeaderSize+walClaimSize]
	}
	return gen, version, claim, nil
}

// walUnwritten reports whether b is a WAL whose creation a crash cut
// short before anything was appended: no complete header (nothing, or
// part of a magic) and nothing but zeros after it. The previous release
// wrote the header in place; this one renames a finished file into place.
func walUnwritten(b []byte) bool {
	n := 0
	for n < len(b) && n < len(walMagic) && (b[n] == walMagic[n] || b[n] == walMagicV1[n]) {
		n++
	}
	if n == len(walMagic) {
		return false
	}
	for _, c := range b[n:] {
		if c != 0 {
			return false
		}
	}
	return true
}

// appendWALRecord appends the record of sealed log l, of generation gen;
// last marks the last record of a batch.
func appendWALRecord(b []byte, gen uint64, l *raft.Log, last bool) []byte {
	start := len(b)
	mark := byte(walMark)
	if last {
		mark = walMarkLast
	}
	b = append(b, mark)
	b = binary.BigEndian.AppendUint64(b, gen)
	b = binary.BigEndian.AppendUint32(b, uint32(walEntryFixed+len(l.Data)))
	b = append(b, 0, 0, 0, 0) // crc, below
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	b = appendTime(b, l.AppendedAt)
	b = append(b, l.Data...)
	crc := crc32.Update(crc32.Checksum(b[start:start+13], walCRC), walCRC, b[start+walRecordHeaderSize:])
	binary.BigEndian.PutUint32(b[start+13:start+17], crc)
	return b
}

// walRecordAt parses the record at b[off:] if it is a whole, intact
// record of generation gen. ok is false at the end of the generation's
// records: another mark or generation, or no room for a record. A record
// of this generation whose length or checksum is wrong gives errBadRecord.
func walRecordAt(b []byte, off int, gen uint64) (l *raft.Log, next int, ok bool, err error) {
	if !walRecordStarts(b, off, gen) {
		return nil, 0, false, nil
	}
	end, intact := walRecordIntact(b, off)
	if !intact {
		return nil, 0, false, errBadRecord
	}
	payload := b[off+walRecordHeaderSize : end]
	l = &raft.Log{
		Index: binary.BigEndian.Uint64(payload),
		Term:  binary.BigEndian.Uint64(payload[8:]),
		Type:  raft.LogType(payload[16]),
	}
	sec, nsec := int64(binary.BigEndian.Uint64(payload[17:])), binary.BigEndian.Uint32(payload[25:])
	if sec != 0 || nsec != 0 {
		l.AppendedAt = time.Unix(sec, int64(nsec))
	}
	l.Data = append([]byte(nil), payload[walEntryFixed:]...)
	return l, end, true, nil
}

// walRecordIntact reports whether the record starting at off (its mark
// and generation already checked) has a length that fits and a matching
// crc, and where it ends.
func walRecordIntact(b []byte, off int) (end int, ok bool) {
	n := int(binary.BigEndian.Uint32(b[off+9:]))
	end = off + walRecordHeaderSize + n
	if n < walEntryFixed || n > walMaxRecord || end > len(b) {
		return 0, false
	}
	crc := crc32.Update(crc32.Checksum(b[off:off+13], walCRC), walCRC, b[off+walRecordHeaderSize:end])
	return end, crc == binary.BigEndian.Uint32(b[off+13:])
}

var errBadRecord = errors.New("bad WAL record")

// walRecordStarts reports whether a record of generation gen starts at off.
func walRecordStarts(b []byte, off int, gen uint64) bool {
	return off >= 0 && len(b)-off >= walRecordHeaderSize && (b[off] == walMark || b[off] == walMarkLast) &&
		binary.BigEndian.Uint64(b[off+1:]) == gen
}

// walContent is what a WAL file holds.
type walContent struct {
	gen     uint64
	version byte   // 1 or 2; 0 for a file a crash left without a header
	claim   []byte // version 2's sealed claim
	logs    []*raft.Log
	torn    int // offset of the torn record that ended the records, or -1
}

// readWAL parses a WAL file's bytes: its generation and the intact records
// of that generation, in order. Reading stops at the first offset that
// does not hold an intact record of the generation. That is where a crash
// cut the last batch's write, unless past it a whole batch ends and an
// intact record of the generation follows (a batch written after the cut
// one, which was then synced before, so a crash cannot have cut it): then
// the file was damaged after it was written, and readWAL fails with
// ErrTampered. Indexes must follow one another.
func readWAL(b []byte) (walContent, error) {
	c := walContent{torn: -1}
	if walUnwritten(b) {
		return c, nil
	}
	var err error
	c.gen, c.version, c.claim, err = parseWALHeader(b)
	if err != nil {
		return walContent{}, err
	}
	off := walDataStart
	for {
		l, next, ok, err := walRecordAt(b, off, c.gen)
		if err == nil && ok && len(c.logs) > 0 && l.Index != c.logs[len(c.logs)-1].Index+1 {
			return walContent{}, fmt.Errorf("%w: WAL record at offset %d holds entry %d after entry %d", ErrTampered, off, l.Index, c.logs[len(c.logs)-1].Index)
		}
		if err != nil || !ok {
			if walLaterBatch(b, off, c.gen) {
				return walContent{}, fmt.Errorf("%w: the WAL's records end at offset %d but a later batch is intact", ErrTampered, off)
			}
			if err != nil {
				c.torn = off
			}
			return c, nil
		}
		c.logs = append(c.logs, l)
		off = next
	}
}

// walLaterBatch reports whether, from the offset where the records stop,
// a batch ends (an intact last record of the generation, or the record
// at off itself if it is marked last) and an intact record of generation
// gen comes after it: a batch written after the one cut at off. It looks
// at every offset, since damage may hide where records start.
func walLaterBatch(b []byte, off int, gen uint64) bool {
	ended := walRecordStarts(b, off, gen) && b[off] == walMarkLast
	for i := off + 1; i <= len(b)-walRecordHeaderSize; i++ {
		if (b[i] != walMark && b[i] != walMarkLast) || !walRecordStarts(b, i, gen) {
			continue
		}
		end, ok := walRecordIntact(b, i)
		if !ok {
			continue
		}
		if ended {
			return true
		}
		ended = b[i] == walMarkLast
		i = end - 1
	}
	return false
}

// loadWAL reads the whole WAL in f (size bytes) and parses it.
func loadWAL(f io.ReaderAt, size int64) (walContent, error) {
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return walContent{}, fmt.Errorf("read WAL: %w", err)
	}
	return readWAL(b)
}

// openWAL opens path and returns it with what it holds. If it does not
// exist (or a crash cut its creation short), it creates it with an empty
// generation (version 0 in what it returns) if create is set, and
// otherwise returns a nil wal and changes nothing. claim seals the claims
// it writes.
func openWAL(path string, capacity int64, claim claimFunc, create bool) (*wal, walContent, error) {
	if capacity <= 0 {
		capacity = DefaultWALSize
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, walContent{torn: -1}, nil
		}
		return createWAL(path, capacity, claim)
	}
	if err != nil {
		return nil, walContent{}, fmt.Errorf("open WAL: %w", err)
	}
	w := &wal{f: f, path: path, capacity: capacity, claim: claim}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, walContent{}, fmt.Errorf("open WAL: %w", err)
	}
	c, err := loadWAL(f, fi.Size())
	if err != nil {
		_ = f.Close()
		return nil, walContent{}, &RecordError{Path: path, Err: err}
	}
	if c.version == 0 {
		_ = f.Close()
		if !create {
			return nil, c, nil
		}
		return createWAL(path, capacity, claim)
	}
	w.gen, w.size, w.off = c.gen, fi.Size(), walDataStart
	return w, c, nil
}

// createWAL writes a new WAL of generation 1 to a temporary file, syncs
// it, renames it to path and syncs the directory, so a crash leaves
// either no WAL or a whole one.
func createWAL(path string, capacity int64, claim claimFunc) (*wal, walContent, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, walContent{}, fmt.Errorf("create WAL: %w", err)
	}
	w := &wal{f: f, path: path, capacity: capacity, claim: claim, gen: 1, off: walDataStart}
	err = w.writeHeader()
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, walContent{}, fmt.Errorf("create WAL: %w", err)
	}
	return w, walContent{gen: 1, torn: -1}, nil
}

// readWALFile reads the records of the WAL at path without changing it;
// a missing file holds none (version 0).
func readWALFile(path string) (walContent, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return walContent{torn: -1}, nil
	}
	if err != nil {
		return walContent{}, fmt.Errorf("read WAL: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return walContent{}, fmt.Errorf("read WAL: %w", err)
	}
	c, err := loadWAL(f, fi.Size())
	if err != nil {
		return walContent{}, &RecordError{Path: path, Err: err}
	}
	return c, nil
}

// writeHeader writes the header of w.gen, with an empty claim, and syncs
// it, growing the file to hold it if needed.
func (w *wal) writeHeader() error {
	if err := w.grow(walDataStart); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(walHeader(w.gen, w.claim(w.gen, 0, 0, 0)), 0); err != nil {
		return fmt.Errorf("write WAL header: %w", err)
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("sync WAL: %w", err)
	}
	return nil
}

// grow zero-fills the file up to at least end, in walGrowStep steps; the
// caller syncs.
func (w *wal) grow(end int64) error {
	for w.size < end {
		n := min(walGrowStep-w.size%walGrowStep, walGrowStep)
		if _, err := w.f.WriteAt(make([]byte, n), w.size); err != nil {
			return fmt.Errorf("grow WAL: %w", err)
		}
		w.size += n
	}
	return nil
}

// fits reports whether a batch of n encoded bytes goes after the records
// already appended without passing the capacity. An empty WAL takes any
// batch.
func (w *wal) fits(n int) bool {
	return w.off == walDataStart || w.off+int64(n) <= w.capacity
}

// encode returns the records of logs, in a buffer reused by the next call.
func (w *wal) encode(logs []*raft.Log) []byte {
	b := w.buf[:0]
	for i, l := range logs {
		b = appendWALRecord(b, w.gen, l, i == len(logs)-1)
	}
	w.buf = b
	if cap(w.buf) > 4<<20 {
		w.buf = nil // do not keep a huge batch's buffer
	}
	return b
}

// write appends the encoded records of a batch ending at entry last and
// rewrites the claim in the header with it, with one fdatasync for both.
// The claim fits in the header's first sector, whose write a power cut
// leaves whole, old or new (FORMAT.md, section 1.1).
func (w *wal) write(b, claim []byte, last uint64) error {
	end := w.off + int64(len(b))
	if err := w.grow(end); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return fmt.Errorf("append to WAL: %w", err)
	}
	if _, err := w.f.WriteAt(claim, int64(walHeaderSize)); err != nil {
		return fmt.Errorf("append to WAL: %w", err)
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("sync WAL: %w", err)
	}
	w.off, w.last = end, last
	return nil
}

// reset starts a new generation: the records written so far are no longer
// read. The caller has made sure raft.db holds all of them.
func (w *wal) reset() error {
	w.gen++
	if err := w.writeHeader(); err != nil {
		return err
	}
	w.off, w.last = walDataStart, 0
	return nil
}

// restart starts a new generation if anything was appended since the
// last one, or a failed write or reset left the file in doubt. The caller
// has made sure raft.db holds every record.
func (w *wal) restart() error {
	if w.off == walDataStart && !w.dirty {
		return nil
	}
	if err := w.reset(); err != nil {
		w.dirty = true
		return err
	}
	w.dirty = false
	return nil
}

// wipe zeroes everything after the header and syncs, so no old record's
// ciphertext stays in the file. The WAL must be empty (just reset).
func (w *wal) wipe() error {
	zero := make([]byte, walGrowStep)
	for off := int64(walDataStart); off < w.size; off += int64(len(zero)) {
		if _, err := w.f.WriteAt(zero[:min(int64(len(zero)), w.size-off)], off); err != nil {
			return fmt.Errorf("wipe WAL: %w", err)
		}
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("sync WAL: %w", err)
	}
	return nil
}

func (w *wal) close() error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close WAL: %w", err)
	}
	return nil
}
