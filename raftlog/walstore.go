package raftlog

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// When the flusher moves pending entries into bolt: once this many are
// pending, or this many bytes, or the oldest has waited this long.
const (
	flushEntries = 2048
	flushBytes   = 1 << 20
	flushDelay   = 50 * time.Millisecond
	// flushRetryMax bounds the wait between attempts after a failed flush.
	flushRetryMax = 5 * time.Second
)

// openWAL opens the WAL, checks it and raft.db against the log state
// (loadState, checkWAL), stores whatever the WAL holds in bolt, and starts
// it over. A store the previous release wrote is upgraded: its stable
// values sealed and its first log state written. s.inner must be open.
func (s *Store) openWAL(capacity int64) error {
	have, err := s.loadState()
	if err != nil {
		return err
	}
	s.sealedValues = have
	// With a log state the WAL was created whole before it, so a missing
	// or headerless one is refused (checkWAL), not created anew.
	w, c, err := openWAL(s.walPath, capacity, s, !have)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if w != nil {
			_ = w.close()
		}
		return err
	}
	if err := s.checkWAL(have, c, withWAL(s.st, c.logs).last()); err != nil {
		return fail(err)
	}
	if w == nil {
		return errors.New("raftlog: no WAL") // checkWAL refuses first
	}
	if c.torn >= 0 {
		// Only the last batch, whose write a crash cut short, can end like
		// this; it was never acknowledged.
		s.log.Warn("raft WAL ends in a torn record, from a write cut short by a crash; the entries before it are kept", "path", s.walPath, "offset", c.torn, "entries", len(c.logs))
	}
	if len(c.logs) > 0 {
		if err := s.storeBolt(c.logs); err != nil {
			return fail(fmt.Errorf("replay WAL %s: %w", s.walPath, err))
		}
		s.log.Info("raft log entries moved from the WAL", "entries", len(c.logs), "first", c.logs[0].Index, "last", c.logs[len(c.logs)-1].Index)
	}
	if err := w.reset(); err != nil {
		return fail(err)
	}
	if !have {
		// After the WAL is this release's: a crash before this leaves a
		// store that opens as the previous release's again.
		if err := s.upgrade(); err != nil {
			return fail(err)
		}
	}
	s.w = w
	return nil
}

// pendingLog returns the pending entry at idx, or nil.
func (s *Store) pendingLog(idx uint64) *raft.Log {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	first := s.pending[0].Index
	if idx < first || idx-first >= uint64(len(s.pending)) {
		return nil
	}
	return s.pending[idx-first]
}

// pendingFirst and pendingLast return the first and last pending index, or 0.
func (s *Store) pendingFirst() uint64 {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.pending) == 0 {
		return 0
	}
	return s.pending[0].Index
}

func (s *Store) pendingLast() uint64 {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if len(s.pending) == 0 {
		return 0
	}
	return s.pending[len(s.pending)-1].Index
}

func consecutive(logs []*raft.Log) bool {
	for i, l := range logs {
		if l.Index != logs[0].Index+uint64(i) {
			return false
		}
	}
	return true
}

// appendSealed makes sealed entries durable: in the WAL, or, for a batch
// raft would not send (indexes not consecutive), in bolt. s.mu is held.
func (s *Store) appendSealed(sealed []*raft.Log) error {
	if len(sealed) == 0 {
		return nil
	}
	if s.w == nil {
		return s.inner.StoreLogs(sealed) // read-only: bolt refuses
	}
	if !consecutive(sealed) {
		return s.drainThen(func() error { return s.storeBolt(sealed) })
	}
	for {
		done, err := s.tryAppend(sealed)
		if done {
			return err
		}
		// The batch does not follow the pending entries, the WAL is full,
		// or a failed write left it in doubt: move everything into bolt
		// and start the WAL over. Then it takes the batch.
		if err := s.drain(); err != nil {
			return err
		}
	}
}

// ObserveSyncs makes the store call f with how long each batch took to
// be written to the WAL and synced: the disk's part of StoreLogs, without
// the sealing before it. f runs on the writer's goroutine before
// StoreLogs returns, so it must be quick; nil stops the calls.
func (s *Store) ObserveSyncs(f func(time.Duration)) {
	if f == nil {
		s.syncObs.Store(nil)
		return
	}
	s.syncObs.Store(&f)
}

// tryAppend writes sealed to the WAL if it follows the records of the
// WAL's generation (any batch starts an empty one) and fits; done is
// false if it did not try.
//
// It checks the WAL's own last record, not pending: the flusher empties
// pending before it starts the WAL over, and a batch that followed an
// empty pending but not the generation's records would make a WAL that
// no longer opens.
func (s *Store) tryAppend(sealed []*raft.Log) (done bool, err error) {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.w.dirty {
		return false, nil
	}
	if !s.w.empty() && s.w.last+1 != sealed[0].Index {
		return false, nil
	}
	began := time.Now()
	fits, err := s.w.append(sealed)
	if !fits {
		return false, nil
	}
	if err != nil {
		// Part of the batch may be in the file: never append after it.
		s.w.dirty = true
		return true, err
	}
	if f := s.syncObs.Load(); f != nil {
		(*f)(time.Since(began))
	}
	s.pmu.Lock()
	if len(s.pending) == 0 {
		s.pendingSince = time.Now()
	}
	s.pending = append(s.pending, sealed...)
	for _, l := range sealed {
		s.pendingBytes += len(l.Data)
	}
	s.pmu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return true, nil
}

// drain moves every pending entry into bolt and starts the WAL over.
// s.mu is held.
func (s *Store) drain() error { return s.drainThen(nil) }

// drainThen drains and, unless that fails, runs then (if not nil) before
// any append can follow. s.mu is held.
func (s *Store) drainThen(then func() error) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if err := s.drainLocked(); err != nil {
		return err
	}
	if then == nil {
		return nil
	}
	return then()
}

// drainLocked is drain with flushMu and walMu held.
func (s *Store) drainLocked() error {
	s.pmu.Lock()
	batch := s.pending
	s.pmu.Unlock()
	if len(batch) > 0 {
		if err := s.storeBolt(batch); err != nil {
			return fmt.Errorf("move entries from the WAL: %w", err)
		}
		s.pmu.Lock()
		s.pending, s.pendingBytes = nil, 0
		s.pmu.Unlock()
	}
	return s.w.restart()
}

// flushPending moves the entries pending now into bolt without holding
// up appends, and starts the WAL over if nothing was appended meanwhile.
func (s *Store) flushPending() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.inner == nil || s.w == nil {
		return ErrClosed
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.pmu.Lock()
	batch := s.pending[:len(s.pending):len(s.pending)]
	s.pmu.Unlock()
	if len(batch) > 0 {
		if err := s.storeBolt(batch); err != nil {
			return fmt.Errorf("move entries from the WAL: %w", err)
		}
		// Only appends changed pending meanwhile (a drain needs flushMu).
		s.pmu.Lock()
		rest := append([]*raft.Log(nil), s.pending[len(batch):]...)
		s.pending, s.pendingBytes = rest, 0
		for _, l := range rest {
			s.pendingBytes += len(l.Data)
		}
		if len(rest) > 0 {
			s.pendingSince = time.Now()
		}
		s.pmu.Unlock()
	}
	if hook := testHookFlushGap.Load(); hook != nil {
		(*hook)(s)
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	s.pmu.Lock()
	empty := len(s.pending) == 0
	s.pmu.Unlock()
	if !empty {
		return nil
	}
	return s.w.restart()
}

// testHookFlushGap, when set by a test, runs in flushPending after the
// flushed entries left pending and before the WAL is started over.
var testHookFlushGap atomic.Pointer[func(*Store)]

// flushLoop runs until Close, moving pending entries into bolt in large
// batches.
func (s *Store) flushLoop() {
	defer close(s.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var retry time.Duration
	for {
		s.pmu.Lock()
		n, size, since, after := len(s.pending), s.pendingBytes, s.pendingSince, s.flushAfter
		s.pmu.Unlock()
		var wait <-chan time.Time
		if n > 0 {
			due := since.Add(max(after, retry))
			if retry == 0 && (n >= flushEntries || size >= flushBytes) || !time.Now().Before(due) {
				if err := s.flushPending(); err != nil {
					if retry == 0 {
						s.log.Error("cannot move raft log entries from the WAL into the bolt file; they are safe in the WAL, retrying", "err", err)
					}
					retry = min(max(2*retry, flushDelay), flushRetryMax)
					s.pmu.Lock()
					s.pendingSince = time.Now()
					s.pmu.Unlock()
				} else if retry != 0 {
					s.log.Info("raft log entries moved from the WAL again")
					retry = 0
				}
				continue
			}
			timer.Reset(time.Until(due))
			wait = timer.C
		}
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-wait:
		}
	}
}
