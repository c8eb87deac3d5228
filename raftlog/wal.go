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
// sealed batch to raft.wal with one contiguous write (which also rewrites
// the trailers of the two batches before it, trailer.go) and one
// fdatasync, and a
// background flusher moves entries into raft.db in large batches, after
// which the WAL is reset. Only sealed records ever reach either file.
// Format: FORMAT.md, section 1.1.

// WALFile is the name of the write-ahead file next to DBFile.
const WALFile = "raft.wal"

const (
	// walMagic starts the header this release writes (version 3: a
	// sealed claim and the sealed trailer T_0 follow it, and every batch
	// ends in a sealed trailer); walMagicV2 and walMagicV1 the previous
	// releases', still read.
	walMagic   = "HFWAL\x00\x03\n"
	walMagicV2 = "HFWAL\x00\x02\n"
	walMagicV1 = "HFWAL\x00\x01\n"
	// walHeaderSize is magic || uint64(generation) || crc32c.
	walHeaderSize = len(walMagic) + 8 + 4
	// walClaimSize is the sealed claim after a version 2 or 3 header:
	// version || key_id || nonce || seal(prev_last || last || last_term).
	walClaimSize = 1 + 8 + 24 + 24 + 16
	// walTrailerSize is a sealed batch trailer: version || key_id ||
	// nonce || seal(last || last_term || state).
	walTrailerSize = 1 + 8 + 24 + walTrailerPlain + 16
	// walTrailer0Off is where T_0, the trailer of generation's virtual
	// batch 0, lies: right after the claim, in the header's sector, so
	// that starting a generation is one sector write.
	walTrailer0Off int64 = 8 + 8 + 4 + walClaimSize // walHeaderSize + walClaimSize
	// walSector is the unit a power cut leaves old or new, never mixed:
	// no trailer straddles a multiple of it.
	walSector = 512
	// walRewriteMax bounds the records of the previous batch that the
	// next batch's write rewrites to stay one contiguous write; past it,
	// that batch's first trailer is written as a region of its own.
	walRewriteMax = 16 << 10
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

// walSealer seals and opens what a version 3 WAL authenticates (the
// Store implements it, integrity.go): the claim of a generation, and the
// trailer of batch k of a generation at file offset off. walBase is what
// raft.db holds when a generation starts: its last index and term.
type walSealer interface {
	sealWALClaim(gen, prevLast uint64) []byte
	sealTrailer(gen, k uint64, off int64, t walTrailer) []byte
	openTrailer(gen, k uint64, off int64, b []byte) (walTrailer, error)
	walBase() (last, lastTerm uint64)
}

// trailerAt is a trailer the writer wrote: where, and what it says.
type trailerAt struct {
	off int64
	t   walTrailer
}

// wal is an open write-ahead file. It is not safe for concurrent use; the
// Store guards it with walMu.
type wal struct {
	f        *os.File
	path     string
	gen      uint64 // generation of the records being appended
	off      int64  // where the next batch's records go
	last     uint64 // index of the last record of this generation, if n > 0
	size     int64  // bytes of the file known to be allocated
	capacity int64
	buf      []byte
	seal     walSealer
	// n is how many batches this generation holds; cur is T_n (Open on
	// disk), prev T_{n-1} (Followed on disk, when n >= 1).
	n         uint64
	cur, prev trailerAt
	// mid holds the bytes between T_{n-1} and T_n (batch n's records and
	// padding) when midKept, that is when they are at most walRewriteMax.
	mid     []byte
	midKept bool
	// dirty means a write or reset failed, so what follows off is in
	// doubt: the WAL must start over before anything is appended.
	dirty bool
}

// walHeaderV3 encodes the header sector of generation gen: magic,
// generation, crc, the sealed claim and the sealed trailer T_0.
func walHeaderV3(gen uint64, claim, t0 []byte) []byte {
	h := make([]byte, 0, walTrailer0Off+walTrailerSize)
	h = append(h, walMagic...)
	h = binary.BigEndian.AppendUint64(h, gen)
	h = binary.BigEndian.AppendUint32(h, crc32.Checksum(h, walCRC))
	h = append(h, claim...)
	return append(h, t0...)
}

// parseWALHeader returns the generation and format version in a file's
// first bytes, for versions 2 and 3 the claim, and for version 3 T_0.
func parseWALHeader(b []byte) (gen uint64, version byte, claim, t0 []byte, err error) {
	if len(b) < walHeaderSize {
		return 0, 0, nil, nil, fmt.Errorf("%w: not a holdfast WAL header", ErrTampered)
	}
	switch string(b[:len(walMagic)]) {
	case walMagic:
		version = 3
	case walMagicV2:
		version = 2
	case walMagicV1:
		version = 1
	default:
		return 0, 0, nil, nil, fmt.Errorf("%w: not a holdfast WAL header", ErrTampered)
	}
	body := b[:walHeaderSize-4]
	if crc32.Checksum(body, walCRC) != binary.BigEndian.Uint32(b[walHeaderSize-4:]) {
		return 0, 0, nil, nil, fmt.Errorf("%w: WAL header checksum mismatch", ErrTampered)
	}
	gen = binary.BigEndian.Uint64(b[len(walMagic):])
	if version >= 2 {
		if len(b) < walHeaderSize+walClaimSize {
			return 0, 0, nil, nil, fmt.Errorf("%w: WAL header has no claim", ErrTampered)
		}
		claim = b[walHeaderSize : walHeaderSize+walClaimSize]
	}
	if version == 3 {
		if int64(len(b)) < walTrailer0Off+walTrailerSize {
			return 0, 0, nil, nil, fmt.Errorf("%w: WAL header has no first trailer", ErrTampered)
		}
		t0 = b[walTrailer0Off : walTrailer0Off+walTrailerSize]
	}
	return gen, version, claim, t0, nil
}

// walTrailerPos returns where the trailer of a batch whose records end
// at end lies: right there, unless it would straddle a sector boundary;
// then at the next boundary (the bytes between are zeros).
func walTrailerPos(end int64) int64 {
	if end%walSector+walTrailerSize <= walSector {
		return end
	}
	return (end/walSector + 1) * walSector
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
	version byte   // 1, 2 or 3; 0 for a file a crash left without a header
	claim   []byte // versions 2 and 3: the sealed claim
	logs    []*raft.Log
	offs    []int // where each of logs' records starts
	// trailers are, for version 3, the opened trailers T_0..T_r of the
	// intact batches (records whole and trailer authentic), in order;
	// empty if T_0 does not authenticate.
	trailers []walTrailer
	torn     int // offset of the torn record or batch that ended the records, or -1
}

// trailerOpener opens the trailer of batch k of generation gen at off.
type trailerOpener func(gen, k uint64, off int64, b []byte) (walTrailer, error)

// readWAL parses a WAL file's bytes: its generation and the intact records
// of that generation, in order. Reading stops at the first offset that
// does not hold an intact record of the generation (or, in version 3, at
// the first batch whose trailer does not open with open). That is where
// a crash cut the last batch's write, unless past it a whole batch ends
// and an intact record of the generation follows (a batch written after
// the cut one, which was then synced before, so a crash cannot have cut
// it): then the file was damaged after it was written, and readWAL fails
// with ErrTampered. Indexes must follow one another. Whether the
// trailers read say the file ends where a writer and a crash can leave
// it is for checkWAL (walChainProblem).
func readWAL(b []byte, open trailerOpener) (walContent, error) {
	c := walContent{torn: -1}
	if walUnwritten(b) {
		return c, nil
	}
	var err error
	var t0 []byte
	c.gen, c.version, c.claim, t0, err = parseWALHeader(b)
	if err != nil {
		return walContent{}, err
	}
	if c.version == 3 {
		t, err := open(c.gen, 0, walTrailer0Off, t0)
		if err != nil {
			return c, nil // checkWAL refuses a generation without T_0
		}
		c.trailers = append(c.trailers, t)
	}
	off := walDataStart
	batch := 0 // index in c.logs of the current batch's first record
	for {
		l, next, ok, err := walRecordAt(b, off, c.gen)
		if err == nil && ok && len(c.logs) > 0 && l.Index != c.logs[len(c.logs)-1].Index+1 {
			return walContent{}, fmt.Errorf("%w: WAL record at offset %d holds entry %d after entry %d", ErrTampered, off, l.Index, c.logs[len(c.logs)-1].Index)
		}
		if err != nil || !ok {
			if c.version == 3 {
				// Records of a batch without its trailer are not the WAL's.
				stop := off
				if batch < len(c.logs) {
					stop = c.offs[batch]
				}
				c.logs, c.offs = c.logs[:batch], c.offs[:batch]
				if walLaterBatch(b, stop, c.gen) {
					return walContent{}, fmt.Errorf("%w: the WAL's records end at offset %d but a later batch is intact", ErrTampered, stop)
				}
				if err != nil || stop != off {
					c.torn = stop
				}
				return c, nil
			}
			if walLaterBatch(b, off, c.gen) {
				return walContent{}, fmt.Errorf("%w: the WAL's records end at offset %d but a later batch is intact", ErrTampered, off)
			}
			if err != nil {
				c.torn = off
			}
			return c, nil
		}
		c.logs = append(c.logs, l)
		c.offs = append(c.offs, off)
		off = next
		if c.version != 3 || b[c.offs[len(c.offs)-1]] != walMarkLast {
			continue
		}
		// The batch's records end here; its trailer follows.
		k := uint64(len(c.trailers))
		pos := int(walTrailerPos(int64(off)))
		var t walTrailer
		terr := errBadRecord
		if pos+walTrailerSize <= len(b) {
			t, terr = open(c.gen, k, int64(pos), b[pos:pos+walTrailerSize])
		}
		if terr != nil {
			// A batch whose trailer does not open is cut (a crash) or
			// damaged; which of the two is for the trailers before it.
			stop := c.offs[batch]
			c.logs, c.offs = c.logs[:batch], c.offs[:batch]
			if walLaterBatch(b, stop, c.gen) {
				return walContent{}, fmt.Errorf("%w: the WAL's records end at offset %d but a later batch is intact", ErrTampered, stop)
			}
			c.torn = stop
			return c, nil
		}
		if t.last != l.Index || t.lastTerm != l.Term {
			return walContent{}, fmt.Errorf("%w: the trailer at WAL offset %d is for entry %d (term %d), not %d (term %d)", ErrTampered, pos, t.last, t.lastTerm, l.Index, l.Term)
		}
		c.trailers = append(c.trailers, t)
		batch = len(c.logs)
		off = pos + walTrailerSize
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
func loadWAL(f io.ReaderAt, size int64, open trailerOpener) (walContent, error) {
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return walContent{}, fmt.Errorf("read WAL: %w", err)
	}
	return readWAL(b, open)
}

// openWAL opens path and returns it with what it holds. If it does not
// exist (or a crash cut its creation short), it creates it with an empty
// generation (version 0 in what it returns) if create is set, and
// otherwise returns a nil wal and changes nothing. sl seals and opens
// the claims and trailers.
func openWAL(path string, capacity int64, sl walSealer, create bool) (*wal, walContent, error) {
	if capacity <= 0 {
		capacity = DefaultWALSize
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, walContent{torn: -1}, nil
		}
		return createWAL(path, capacity, sl)
	}
	if err != nil {
		return nil, walContent{}, fmt.Errorf("open WAL: %w", err)
	}
	w := &wal{f: f, path: path, capacity: capacity, seal: sl}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, walContent{}, fmt.Errorf("open WAL: %w", err)
	}
	c, err := loadWAL(f, fi.Size(), sl.openTrailer)
	if err != nil {
		_ = f.Close()
		return nil, walContent{}, &RecordError{Path: path, Err: err}
	}
	if c.version == 0 {
		_ = f.Close()
		if !create {
			return nil, c, nil
		}
		return createWAL(path, capacity, sl)
	}
	w.gen, w.size, w.off = c.gen, fi.Size(), walDataStart
	return w, c, nil
}

// createWAL writes a new WAL of generation 1 to a temporary file, syncs
// it, renames it to path and syncs the directory, so a crash leaves
// either no WAL or a whole one.
func createWAL(path string, capacity int64, sl walSealer) (*wal, walContent, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, walContent{}, fmt.Errorf("create WAL: %w", err)
	}
	w := &wal{f: f, path: path, capacity: capacity, seal: sl, gen: 1}
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
func readWALFile(path string, open trailerOpener) (walContent, error) {
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
	c, err := loadWAL(f, fi.Size(), open)
	if err != nil {
		return walContent{}, &RecordError{Path: path, Err: err}
	}
	return c, nil
}

// writeHeader writes the header sector of w.gen, with its claim and T_0
// (Open, saying where raft.db ends), and syncs it, growing the file to
// hold it if needed. The generation then holds no batch.
func (w *wal) writeHeader() error {
	if err := w.grow(walDataStart); err != nil {
		return err
	}
	last, term := w.seal.walBase()
	t0 := walTrailer{last: last, lastTerm: term, state: trailerOpen}
	h := walHeaderV3(w.gen, w.seal.sealWALClaim(w.gen, last), w.seal.sealTrailer(w.gen, 0, walTrailer0Off, t0))
	if _, err := w.f.WriteAt(h, 0); err != nil {
		return fmt.Errorf("write WAL header: %w", err)
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("sync WAL: %w", err)
	}
	w.n, w.last, w.off = 0, 0, walDataStart
	w.cur, w.prev = trailerAt{off: walTrailer0Off, t: t0}, trailerAt{}
	w.mid, w.midKept = w.mid[:0], false
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

// empty reports whether this generation holds no batch.
func (w *wal) empty() bool { return w.n == 0 }

// append makes logs (sealed, following the generation's last record)
// batch n+1 of the generation, with one fdatasync: one contiguous write
// from T_{n-1} on, of T_{n-1} rewritten Confirmed, batch n's records and
// padding rewritten byte for byte, T_n rewritten Followed, then the new
// records and T_{n+1}, Open. If batch n's records are longer than
// walRewriteMax, T_{n-1} is written on its own instead, and the rest
// from T_n on (FORMAT.md, section 1.1). fits is false, and nothing is
// written, if the batch would take a non-empty WAL past its capacity.
func (w *wal) append(logs []*raft.Log) (fits bool, err error) {
	b := w.buf[:0]
	start := w.cur.off
	var sep []byte // T_{n-1}, when written on its own
	if w.n > 0 {
		prev := w.seal.sealTrailer(w.gen, w.n-1, w.prev.off, w.prev.t.with(trailerConfirmed))
		if w.midKept {
			start = w.prev.off
			b = append(b, prev...)
			b = append(b, w.mid...)
		} else {
			sep = prev
		}
	}
	b = append(b, w.seal.sealTrailer(w.gen, w.n, w.cur.off, w.cur.t.with(trailerFollowed))...)
	midStart := len(b)
	b = append(b, make([]byte, w.off-(w.cur.off+walTrailerSize))...) // only after T_0
	for i, l := range logs {
		b = appendWALRecord(b, w.gen, l, i == len(logs)-1)
	}
	recEnd := start + int64(len(b))
	pos := walTrailerPos(recEnd)
	end := pos + walTrailerSize
	if w.n > 0 && end > w.capacity {
		w.keep(b)
		return false, nil
	}
	b = append(b, make([]byte, pos-recEnd)...)
	midEnd := len(b)
	last := logs[len(logs)-1]
	t := walTrailer{last: last.Index, lastTerm: last.Term, state: trailerOpen}
	b = append(b, w.seal.sealTrailer(w.gen, w.n+1, pos, t)...)
	w.keep(b)
	if err := w.grow(end); err != nil {
		return true, err
	}
	if sep != nil {
		if _, err := w.f.WriteAt(sep, w.prev.off); err != nil {
			return true, fmt.Errorf("append to WAL: %w", err)
		}
	}
	if _, err := w.f.WriteAt(b, start); err != nil {
		return true, fmt.Errorf("append to WAL: %w", err)
	}
	if err := fdatasync(w.f); err != nil {
		return true, fmt.Errorf("sync WAL: %w", err)
	}
	w.midKept = midEnd-midStart <= walRewriteMax
	w.mid = w.mid[:0]
	if w.midKept {
		w.mid = append(w.mid, b[midStart:midEnd]...)
	}
	w.prev, w.cur = w.cur, trailerAt{off: pos, t: t}
	w.n++
	w.off, w.last = end, last.Index
	return true, nil
}

// keep keeps b as the buffer the next append reuses, unless it is huge.
func (w *wal) keep(b []byte) {
	w.buf = b
	if cap(w.buf) > 4<<20 {
		w.buf = nil // do not keep a huge batch's buffer
	}
}

// reset starts a new generation: the records written so far are no longer
// read. The caller has made sure raft.db holds all of them.
func (w *wal) reset() error {
	w.gen++
	return w.writeHeader()
}

// restart starts a new generation if anything was appended since the
// last one, or a failed write or reset left the file in doubt. The caller
// has made sure raft.db holds every record.
func (w *wal) restart() error {
	if w.empty() && !w.dirty {
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
