package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// What keeps the log from being rolled back unnoticed (FORMAT.md, section
// 1.2): the sealed log state in raft.db, rewritten with every change to
// its entries, and in the WAL the sealed claim of each generation and
// the sealed trailer of each batch (trailer.go; version 2 rewrote the
// claim with every batch instead). At open they are checked against what
// the files hold.

const (
	// walClaimADLabel labels a version 2 WAL's claim, walClaimV3ADLabel a
	// version 3 one's: a header's version cannot be changed under its claim.
	walClaimADLabel   = "holdfast/raftlog wal claim v1"
	walClaimV3ADLabel = "holdfast/raftlog wal claim v3"
	walTrailerADLabel = "holdfast/raftlog wal trailer v1"
)

// walClaim is the opened claim of a WAL generation.
type walClaim struct {
	prevLast, last, lastTerm uint64
}

var _ walSealer = (*Store)(nil)

func claimPlain(prevLast, last, lastTerm uint64) []byte {
	pt := make([]byte, 0, 24)
	pt = binary.BigEndian.AppendUint64(pt, prevLast)
	pt = binary.BigEndian.AppendUint64(pt, last)
	return binary.BigEndian.AppendUint64(pt, lastTerm)
}

// sealWALClaim seals the claim of a version 3 generation: raft.db ended
// at prevLast when it started.
func (s *Store) sealWALClaim(gen, prevLast uint64) []byte {
	return s.bd.seal(s.keys.Current(), walClaimV3ADLabel, binary.BigEndian.AppendUint64(nil, gen), claimPlain(prevLast, 0, 0))
}

// openClaim authenticates the claim of generation gen of a WAL of the
// given version (2 or 3).
func (s *Store) openClaim(version byte, gen uint64, b []byte) (walClaim, error) {
	label := walClaimADLabel
	if version == 3 {
		label = walClaimV3ADLabel
	}
	pt, err := s.bd.open(s.keys, label, binary.BigEndian.AppendUint64(nil, gen), b)
	if err != nil {
		return walClaim{}, err
	}
	if len(pt) != 24 {
		return walClaim{}, fmt.Errorf("%w: malformed WAL claim", ErrTampered)
	}
	return walClaim{binary.BigEndian.Uint64(pt), binary.BigEndian.Uint64(pt[8:]), binary.BigEndian.Uint64(pt[16:])}, nil
}

// trailerName is what a trailer is bound to: its generation, its batch's
// number in the generation, and its offset in the file.
func trailerName(gen, k uint64, off int64) []byte {
	n := make([]byte, 0, 24)
	n = binary.BigEndian.AppendUint64(n, gen)
	n = binary.BigEndian.AppendUint64(n, k)
	return binary.BigEndian.AppendUint64(n, uint64(off))
}

// sealTrailer seals the trailer of batch k of generation gen at off.
func (s *Store) sealTrailer(gen, k uint64, off int64, t walTrailer) []byte {
	return s.bd.seal(s.keys.Current(), walTrailerADLabel, trailerName(gen, k, off), t.marshal())
}

// openTrailer authenticates the trailer of batch k of generation gen at off.
func (s *Store) openTrailer(gen, k uint64, off int64, b []byte) (walTrailer, error) {
	pt, err := s.bd.open(s.keys, walTrailerADLabel, trailerName(gen, k, off), b)
	if err != nil {
		return walTrailer{}, err
	}
	return parseWALTrailer(pt)
}

// walBase is what raft.db holds now: its last index and that entry's term.
func (s *Store) walBase() (last, lastTerm uint64) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	return s.st.last(), s.st.lastTerm
}

// loadState reads the sealed log state and checks the logs bucket against
// it. have is false for a store without one: new, or written by the
// previous release.
func (s *Store) loadState() (have bool, err error) {
	err = s.inner.db.View(func(tx *bbolt.Tx) error {
		st, ok, err := s.bd.readState(tx, s.keys)
		if err != nil {
			return fmt.Errorf("raft log %s: the log state record: %w; %s", s.path, err, rollbackAdvice)
		}
		if !ok {
			return nil
		}
		detail, err := checkBolt(tx, st)
		if err != nil {
			return &StateError{Path: s.path, Detail: err.Error()}
		}
		if detail != "" {
			return &StateError{Path: s.path, Detail: detail}
		}
		// Every stable value opens, so an edited term or vote record
		// stops the store here rather than inside raft.
		err = tx.Bucket(bucketConf).ForEach(func(k, v []byte) error {
			if string(k) == string(stateKey) {
				return nil
			}
			if _, err := s.bd.open(s.keys, valueADLabel, k, v); err != nil {
				return fmt.Errorf("raft stable store %s: value %q: %w; %s", s.path, k, err, restoreAdvice)
			}
			return nil
		})
		if err != nil {
			return err
		}
		have = true
		s.st = st
		s.stLast.Store(st.last())
		return nil
	})
	return have, err
}

// checkWAL checks what the WAL holds against the log state: with a state,
// the WAL must be this release's and its claim must authenticate and be
// met by the log once the WAL's records are in (last, the log's last
// index then). Without one, nothing in either file may have been written
// by this release.
func (s *Store) checkWAL(have bool, c walContent, last uint64) error {
	if !have {
		var boltLast *raft.Log
		err := s.inner.db.View(func(tx *bbolt.Tx) error {
			_, v := tx.Bucket(bucketLogs).Cursor().Last()
			if v == nil {
				return nil
			}
			boltLast = new(raft.Log)
			return decodeLogValue(v, boltLast)
		})
		if err != nil {
			return &StateError{Path: s.path, Detail: err.Error()}
		}
		if hasNewRecord(boltLast) {
			return &StateError{Path: s.path, Detail: "the log state record is missing, but the log holds entries written with one"}
		}
		if hasNewRecord(c.logs...) {
			return &StateError{Path: s.walPath, Detail: "the log state record is missing, but the WAL holds entries written with one"}
		}
		return nil
	}
	if c.version != 2 && c.version != 3 {
		return &StateError{Path: s.walPath, Detail: "the WAL is missing or was replaced by one of another format"}
	}
	cl, err := s.openClaim(c.version, c.gen, c.claim)
	if err != nil {
		return &StateError{Path: s.walPath, Detail: fmt.Sprintf("the claim in the WAL's header does not authenticate for generation %d: %v", c.gen, err)}
	}
	if c.version == 3 {
		return s.checkTrailers(c, cl)
	}
	if cl.last == 0 {
		return nil // no batch in this generation
	}
	if last < cl.prevLast {
		return &StateError{Path: s.walPath, Detail: fmt.Sprintf("the log ends at entry %d but entries up to %d were made durable", last, cl.prevLast)}
	}
	if n := len(c.logs); n > 0 && c.logs[0].Index <= cl.last && cl.last <= c.logs[n-1].Index {
		if t := c.logs[cl.last-c.logs[0].Index].Term; t != cl.lastTerm {
			return &StateError{Path: s.walPath, Detail: fmt.Sprintf("entry %d has term %d but was written with term %d", cl.last, t, cl.lastTerm)}
		}
	}
	return nil
}

// checkTrailers checks a version 3 generation: its first trailer agrees
// with the claim, and the trailers of the intact batches end as a write
// and a crash can leave them (walChainProblem), so at most the last
// acknowledged batch can be missing. (Where raft.db ended when the
// generation started is not checked against the log: raft may delete
// its tail after that, and raft.db's own log state covers raft.db.)
func (s *Store) checkTrailers(c walContent, cl walClaim) error {
	if p := walChainProblem(c.trailers); p != "" {
		return &StateError{Path: s.walPath, Detail: fmt.Sprintf("generation %d: %s", c.gen, p)}
	}
	if t0 := c.trailers[0]; t0.last != cl.prevLast {
		return &StateError{Path: s.walPath, Detail: fmt.Sprintf("generation %d: its first trailer says entry %d, its claim %d", c.gen, t0.last, cl.prevLast)}
	}
	return nil
}

// withWAL returns st with the WAL's records added, as storing them would.
func withWAL(st logState, logs []*raft.Log) logState {
	st = st.clone()
	if len(logs) == 0 {
		return st
	}
	first, last := logs[0], logs[len(logs)-1]
	st = st.add(first.Index, last.Index)
	if last.Index >= st.last() {
		st.lastTerm = last.Term
	}
	return st
}

// upgrade seals every stable value stored raw and writes the first log
// state, in one transaction; from then on the store keeps both sealed.
func (s *Store) upgrade() error {
	k := s.keys.Current()
	var st logState
	err := s.inner.db.Update(func(tx *bbolt.Tx) error {
		conf := tx.Bucket(bucketConf)
		type kv struct{ k, v []byte }
		var raw []kv
		if err := conf.ForEach(func(k, v []byte) error {
			raw = append(raw, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range raw {
			if err := conf.Put(e.k, s.bd.seal(k, valueADLabel, e.k, e.v)); err != nil {
				return err
			}
		}
		var err error
		if st, err = stateOfBolt(tx); err != nil {
			return err
		}
		return s.bd.putState(tx, k, st)
	})
	if err != nil {
		return fmt.Errorf("seal the stable store: %w", err)
	}
	s.st = st
	s.stLast.Store(st.last())
	s.sealedValues = true
	return nil
}

// runsOf splits sealed logs, ordered by index, into runs of consecutive indexes.
func runsOf(logs []*raft.Log) []run {
	var rs []run
	for _, l := range logs {
		if n := len(rs); n > 0 && rs[n-1].hi+1 == l.Index {
			rs[n-1].hi = l.Index
		} else {
			rs = append(rs, run{l.Index, l.Index})
		}
	}
	return rs
}

// changeLogs runs change in a bolt transaction that also rewrites the log
// state after it: the runs in rs were stored, or deleted. Without a log
// state (a read-only store) it only runs change.
func (s *Store) changeLogs(rs []run, stored bool, change func(tx *bbolt.Tx) error) error {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	var next logState
	err := s.inner.db.Update(func(tx *bbolt.Tx) error {
		if err := change(tx); err != nil {
			return err
		}
		if !s.sealedValues {
			return nil
		}
		st := s.st
		for _, r := range rs {
			var err error
			if st, err = stateAfter(tx, st, r.lo, r.hi, stored); err != nil {
				return err
			}
		}
		next = st
		return s.bd.putState(tx, s.keys.Current(), st)
	})
	if err != nil || !s.sealedValues {
		return err
	}
	s.st = next
	s.stLast.Store(next.last())
	return nil
}

// storeBolt stores sealed logs, ordered by index, in bolt.
func (s *Store) storeBolt(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	return s.changeLogs(runsOf(logs), true, func(tx *bbolt.Tx) error { return s.inner.putLogs(tx, logs) })
}

// deleteBolt deletes entries lo..hi from bolt.
func (s *Store) deleteBolt(lo, hi uint64) error {
	if lo > hi {
		return nil
	}
	return s.changeLogs([]run{{lo, hi}}, false, func(tx *bbolt.Tx) error { return deleteLogs(tx, lo, hi) })
}

// setValue stores a stable value, sealed once the store keeps them so.
// The first time a name is set, the log state lists it, in the same
// transaction.
func (s *Store) setValue(k, v []byte) error {
	if !s.sealedValues {
		return s.inner.Set(k, v)
	}
	if string(k) == string(stateKey) {
		return fmt.Errorf("raft stable store: %q is reserved", k)
	}
	cur := s.keys.Current()
	v = s.bd.seal(cur, valueADLabel, k, v)
	s.stMu.Lock()
	defer s.stMu.Unlock()
	if s.st.hasValue(k) {
		return s.inner.Set(k, v)
	}
	if len(s.st.values) >= maxValues {
		return fmt.Errorf("raft stable store: more than %d values", maxValues)
	}
	next := s.st.withValue(k)
	err := s.inner.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketConf).Put(k, v); err != nil {
			return err
		}
		return s.bd.putState(tx, cur, next)
	})
	if err == nil {
		s.st = next
	}
	return err
}

// getValue reads a stable value. A sealed value that does not open, or
// one the log state lists that is missing, is an error naming the file,
// wrapping ErrTampered or ErrUnknownKey.
func (s *Store) getValue(k []byte) ([]byte, error) {
	v, err := s.inner.Get(k)
	if err != nil || !s.sealedValues {
		if errors.Is(err, raftboltdb.ErrKeyNotFound) && s.sealedValues {
			s.stMu.Lock()
			listed := s.st.hasValue(k)
			s.stMu.Unlock()
			if listed {
				return nil, fmt.Errorf("raft stable store %s: value %q: %w: it was set but is missing; %s", s.path, k, ErrTampered, rollbackAdvice)
			}
		}
		return v, err
	}
	pt, err := s.bd.open(s.keys, valueADLabel, k, v)
	if err != nil {
		return nil, fmt.Errorf("raft stable store %s: value %q: %w; %s", s.path, k, err, restoreAdvice)
	}
	return pt, nil
}

// resealValues re-seals under the current key every stable value and the
// log state sealed under another. s.mu is held exclusively.
func (s *Store) resealValues() error {
	if !s.sealedValues {
		return nil
	}
	k := s.keys.Current()
	s.stMu.Lock()
	defer s.stMu.Unlock()
	return s.inner.db.Update(func(tx *bbolt.Tx) error {
		conf := tx.Bucket(bucketConf)
		type kv struct{ k, v []byte }
		var redo []kv
		err := conf.ForEach(func(name, v []byte) error {
			if sealedKeyID(v) == k.ID() || string(name) == string(stateKey) {
				return nil
			}
			pt, err := s.bd.open(s.keys, valueADLabel, name, v)
			if err != nil {
				return fmt.Errorf("raft stable store %s: value %q: %w", s.path, name, err)
			}
			redo = append(redo, kv{append([]byte(nil), name...), s.bd.seal(k, valueADLabel, name, pt)})
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range redo {
			if err := conf.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return s.bd.putState(tx, k, s.st)
	})
}
