package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
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
	walMagic = "HFWAL\x00\x01\n"
	// walHeaderSize is magic || uint64(generation) || crc32c.
	walHeaderSize = len(walMagic) + 8 + 4
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
	// walMaxRecord bounds one record's payload when reading.
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

// wal is an open write-ahead file. It is not safe for concurrent use; the
// Store guards it with walMu.
type wal struct {
	f        *os.File
	path     string
	gen      uint64 // generation of the records being appended
	off      int64  // where the next record goes
	size     int64  // bytes of the file known to be allocated
	capacity int64
	buf      []byte
	// dirty means a write or reset failed, so what follows off is in
	// doubt: the WAL must start over before anything is appended.
	dirty bool
}

// walHeader encodes the file header of generation gen.
func walHeader(gen uint64) []byte {
	h := make([]byte, 0, walHeaderSize)
	h = append(h, walMagic...)
	h = binary.BigEndian.AppendUint64(h, gen)
	return binary.BigEndian.AppendUint32(h, crc32.Checksum(h, walCRC))
}

// parseWALHeader returns the generation in a file's first bytes.
func parseWALHeader(b []byte) (uint64, error) {
	if len(b) < walHeaderSize || string(b[:len(walMagic)]) != walMagic {
		return 0, fmt.Errorf("%w: not a holdfast WAL header", ErrTampered)
	}
	body := b[:walHeaderSize-4]
	if crc32.Checksum(body, walCRC) != binary.BigEndian.Uint32(b[walHeaderSize-4:]) {
		return 0, fmt.Errorf("%w: WAL header checksum mismatch", ErrTampered)
	}
	return binary.BigEndian.Uint64(b[len(walMagic):]), nil
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
	n := int(binary.BigEndian.Uint32(b[off+9:]))
	end := off + walRecordHeaderSize + n
	if n < walEntryFixed || n > walMaxRecord || end > len(b) {
		return nil, 0, false, errBadRecord
	}
	payload := b[off+walRecordHeaderSize : end]
	crc := crc32.Update(crc32.Checksum(b[off:off+13], walCRC), walCRC, payload)
	if crc != binary.BigEndian.Uint32(b[off+13:]) {
		return nil, 0, false, errBadRecord
	}
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

var errBadRecord = errors.New("bad WAL record")

// walRecordStarts reports whether a record of generation gen starts at off.
func walRecordStarts(b []byte, off int, gen uint64) bool {
	return off >= 0 && len(b)-off >= walRecordHeaderSize && (b[off] == walMark || b[off] == walMarkLast) &&
		binary.BigEndian.Uint64(b[off+1:]) == gen
}

// readWAL parses a WAL file's bytes: its generation and the intact records
// of that generation, in order. A bad record is taken for a write torn by
// a crash, and ends the records — unless a whole batch was written after
// the bad record's batch (which was then synced before, so a crash cannot
// have torn it): then it was damaged afterwards, and readWAL fails with
// ErrTampered. Indexes must follow one another.
func readWAL(b []byte) (uint64, []*raft.Log, error) {
	gen, logs, _, _, err := readWALRecords(b)
	return gen, logs, err
}

// readWALRecords is readWAL that also says where a torn record was found
// (-1 if none) and the offset where reading stopped.
func readWALRecords(b []byte) (gen uint64, logs []*raft.Log, torn, stop int, err error) {
	gen, err = parseWALHeader(b)
	if err != nil {
		return 0, nil, -1, 0, err
	}
	off := walDataStart
	for {
		l, next, ok, err := walRecordAt(b, off, gen)
		if err != nil {
			if walLaterBatch(b, off, gen) {
				return 0, nil, -1, off, fmt.Errorf("%w: WAL record at offset %d is damaged but a later batch is intact", ErrTampered, off)
			}
			return gen, logs, off, off, nil // torn tail
		}
		if !ok {
			return gen, logs, -1, off, nil
		}
		if len(logs) > 0 && l.Index != logs[len(logs)-1].Index+1 {
			return 0, nil, -1, off, fmt.Errorf("%w: WAL record at offset %d holds entry %d after entry %d", ErrTampered, off, l.Index, logs[len(logs)-1].Index)
		}
		logs = append(logs, l)
		off = next
	}
}

// walFirstRead is how much of the WAL loadWAL reads first. The file keeps
// the size its busiest generation needed, but the current generation's
// records are usually a small prefix of it.
const walFirstRead = 1 << 20

// loadWAL reads the records of the WAL in f (size bytes) and where a torn
// record ended them (-1 if none). It reads a prefix, and twice as much
// again while the records may go on past it (they reach its end, or end
// in what looks torn or damaged only because the prefix cut it), so
// opening a large WAL after a clean stop reads one small prefix.
func loadWAL(f io.ReaderAt, size int64) (uint64, []*raft.Log, int, error) {
	n := min(size, walFirstRead)
	for {
		b := make([]byte, n)
		if _, err := f.ReadAt(b, 0); err != nil {
			return 0, nil, -1, fmt.Errorf("read WAL: %w", err)
		}
		gen, logs, torn, stop, err := readWALRecords(b)
		if n == size || (torn < 0 && err == nil && int64(stop)+walRecordHeaderSize <= n) {
			return gen, logs, torn, err
		}
		n = min(2*n, size)
	}
}

// walLaterBatch reports whether, after the damaged record at off (as far
// as the records' own lengths lead), a batch ends and an intact record of
// generation gen follows: a batch written after the damaged one.
func walLaterBatch(b []byte, off int, gen uint64) bool {
	ended := b[off] == walMarkLast // the damaged record ends its batch
	n := int(binary.BigEndian.Uint32(b[off+9:]))
	if n < walEntryFixed || n > walMaxRecord {
		return false
	}
	for off += walRecordHeaderSize + n; ; {
		_, next, ok, err := walRecordAt(b, off, gen)
		if !ok || err != nil {
			return false
		}
		if ended {
			return true
		}
		ended = b[off] == walMarkLast
		off = next
	}
}

// openWAL opens path, creating it with an empty generation if it does not
// exist, and returns it with the records it holds and where a torn record
// ended them (-1 if none).
func openWAL(path string, capacity int64) (*wal, []*raft.Log, int, error) {
	if capacity <= 0 {
		capacity = DefaultWALSize
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("open WAL: %w", err)
	}
	w := &wal{f: f, path: path, capacity: capacity}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, -1, fmt.Errorf("open WAL: %w", err)
	}
	if fi.Size() == 0 {
		// New: the header, then zeroed space for the first records.
		w.gen = 1
		if err := w.writeHeader(); err != nil {
			_ = f.Close()
			return nil, nil, -1, err
		}
		w.off = walDataStart
		return w, nil, -1, nil
	}
	gen, logs, torn, err := loadWAL(f, fi.Size())
	if err != nil {
		_ = f.Close()
		return nil, nil, -1, &RecordError{Path: path, Err: err}
	}
	w.gen, w.size, w.off = gen, fi.Size(), walDataStart
	return w, logs, torn, nil
}

// readWALFile reads the records of the WAL at path without changing it;
// a missing file holds none.
func readWALFile(path string) ([]*raft.Log, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read WAL: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read WAL: %w", err)
	}
	_, logs, _, err := loadWAL(f, fi.Size())
	if err != nil {
		return nil, &RecordError{Path: path, Err: err}
	}
	return logs, nil
}

// writeHeader writes the header of w.gen and syncs it, growing the file
// to hold it if needed.
func (w *wal) writeHeader() error {
	if err := w.grow(walDataStart); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(walHeader(w.gen), 0); err != nil {
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

// write appends encoded records with one write and one fdatasync.
func (w *wal) write(b []byte) error {
	end := w.off + int64(len(b))
	if err := w.grow(end); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return fmt.Errorf("append to WAL: %w", err)
	}
	if err := fdatasync(w.f); err != nil {
		return fmt.Errorf("sync WAL: %w", err)
	}
	w.off = end
	return nil
}

// reset starts a new generation: the records written so far are no longer
// read. The caller has made sure raft.db holds all of them.
func (w *wal) reset() error {
	w.gen++
	if err := w.writeHeader(); err != nil {
		return err
	}
	w.off = walDataStart
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
