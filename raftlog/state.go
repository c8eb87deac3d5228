package raftlog

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/hashicorp/raft"
	"github.com/holdfast/holdfast/internal/seal"
	"go.etcd.io/bbolt"
)

// The log state: a sealed record, in the conf bucket, of which indexes
// raft.db holds (the runs of consecutive entries, so a gap a snapshot
// covers is legitimate and any other missing entry is not) and the term
// of the last one. It is rewritten in the same bolt transaction as every
// change to the logs bucket, so at open the bucket must match it exactly;
// anything else is a rollback or damage. Format: FORMAT.md, section 1.2.

const (
	// stateVersion is the version byte of the sealed state record and of
	// sealed stable values.
	stateVersion = 0x01
	stateADLabel = "holdfast/raftlog state v1"
	valueADLabel = "holdfast/raftlog stable v1"
	// maxRuns bounds the runs a state lists. Past it the oldest run is
	// dropped and the floor rises above it: entries below the floor are
	// no longer checked (raft compacts them away soon anyway).
	maxRuns = 1024
)

// stateKey is the conf key of the sealed log state. Its presence also
// says that every other conf value is sealed.
var stateKey = []byte("holdfast/raftlog/state")

// ErrRolledBack means the raft log on disk holds less than, or other than,
// what this node made durable: entries were deleted, rewound or replaced,
// or the records that say what it holds were. It wraps ErrTampered.
var ErrRolledBack = fmt.Errorf("%w: the log was rolled back or damaged", ErrTampered)

// rollbackAdvice tells the operator what to do about a rolled-back log.
const rollbackAdvice = "this node's log was rolled back or damaged: wipe it and rejoin (restore it from its peers: stop it, wipe its data dir, and join again) or restore it from a backup"

// StateError reports a raft log whose files do not hold what this node
// made durable. It wraps ErrRolledBack (and so ErrTampered).
type StateError struct {
	Path   string // the file found wrong
	Detail string // what was found
}

func (e *StateError) Error() string {
	return fmt.Sprintf("raft log %s: %s; %s", e.Path, e.Detail, rollbackAdvice)
}

func (e *StateError) Unwrap() error { return ErrRolledBack }

// run is a range of consecutive indexes, both included.
type run struct{ lo, hi uint64 }

// logState is what raft.db holds: runs of entries above floor, in order,
// neither overlapping nor touching, the term of the last entry, and the
// names of the stable values set (sorted), so a removed one is noticed.
type logState struct {
	floor    uint64 // indexes below it are not tracked
	runs     []run
	lastTerm uint64
	values   []string
}

// maxValues bounds how many stable value names a state lists.
const maxValues = 64

func (st logState) hasValue(name []byte) bool {
	_, ok := slices.BinarySearch(st.values, string(name))
	return ok
}

// withValue returns st listing name too.
func (st logState) withValue(name []byte) logState {
	i, ok := slices.BinarySearch(st.values, string(name))
	if !ok {
		st.values = slices.Insert(slices.Clone(st.values), i, string(name))
	}
	return st
}

func (st logState) last() uint64 {
	if len(st.runs) == 0 {
		return 0
	}
	return st.runs[len(st.runs)-1].hi
}

func (st logState) clone() logState {
	st.runs = append([]run(nil), st.runs...)
	return st
}

// add returns st with lo..hi present. Indexes below the floor stay
// untracked.
func (st logState) add(lo, hi uint64) logState {
	if hi < st.floor {
		return st.clone()
	}
	lo = max(lo, st.floor)
	out := logState{floor: st.floor, lastTerm: st.lastTerm, values: st.values}
	placed := false
	for _, r := range st.runs {
		switch {
		case r.hi+1 < lo:
			out.runs = append(out.runs, r)
		case hi+1 < r.lo:
			if !placed {
				out.runs = append(out.runs, run{lo, hi})
				placed = true
			}
			out.runs = append(out.runs, r)
		default: // overlaps or touches: merge
			lo, hi = min(lo, r.lo), max(hi, r.hi)
		}
	}
	if !placed {
		out.runs = append(out.runs, run{lo, hi})
	}
	for len(out.runs) > maxRuns {
		out.floor = out.runs[1].lo
		out.runs = out.runs[1:]
	}
	return out
}

// remove returns st with lo..hi absent.
func (st logState) remove(lo, hi uint64) logState {
	out := logState{floor: st.floor, lastTerm: st.lastTerm, values: st.values}
	for _, r := range st.runs {
		if r.hi < lo || r.lo > hi {
			out.runs = append(out.runs, r)
			continue
		}
		if r.lo < lo {
			out.runs = append(out.runs, run{r.lo, lo - 1})
		}
		if r.hi > hi {
			out.runs = append(out.runs, run{hi + 1, r.hi})
		}
	}
	return out
}

// marshal encodes the state's plaintext:
// uint64(floor) || uint64(last_term) || uint32(n) || n * (uint64(lo) || uint64(hi))
// || uint32(m) || m * (uint16(len(name)) || name).
func (st logState) marshal() []byte {
	b := make([]byte, 0, 24+16*len(st.runs)+32*len(st.values))
	b = binary.BigEndian.AppendUint64(b, st.floor)
	b = binary.BigEndian.AppendUint64(b, st.lastTerm)
	b = binary.BigEndian.AppendUint32(b, uint32(len(st.runs)))
	for _, r := range st.runs {
		b = binary.BigEndian.AppendUint64(b, r.lo)
		b = binary.BigEndian.AppendUint64(b, r.hi)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(st.values)))
	for _, v := range st.values {
		b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
		b = append(b, v...)
	}
	return b
}

func parseLogState(b []byte) (logState, error) {
	bad := fmt.Errorf("%w: malformed log state", ErrTampered)
	if len(b) < 20 {
		return logState{}, bad
	}
	st := logState{floor: binary.BigEndian.Uint64(b), lastTerm: binary.BigEndian.Uint64(b[8:])}
	n := binary.BigEndian.Uint32(b[16:])
	b = b[20:]
	if n > maxRuns || len(b) < 16*int(n)+4 {
		return logState{}, bad
	}
	prev := uint64(0)
	for i := range int(n) {
		r := run{binary.BigEndian.Uint64(b[16*i:]), binary.BigEndian.Uint64(b[16*i+8:])}
		if r.lo > r.hi || r.lo < st.floor || (i > 0 && r.lo <= prev+1) {
			return logState{}, bad
		}
		st.runs, prev = append(st.runs, r), r.hi
	}
	b = b[16*n:]
	m := binary.BigEndian.Uint32(b)
	b = b[4:]
	if m > maxValues {
		return logState{}, bad
	}
	for range m {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			return logState{}, bad
		}
		name := string(b[2 : 2+int(binary.BigEndian.Uint16(b))])
		if k := len(st.values); k > 0 && name <= st.values[k-1] {
			return logState{}, bad
		}
		st.values = append(st.values, name)
		b = b[2+len(name):]
	}
	if len(b) != 0 {
		return logState{}, bad
	}
	return st, nil
}

// binding is what every sealed value, the log state and the WAL's claim
// and trailers are bound to besides their own place: the cluster and the
// node.
type binding struct {
	clusterID string
	nodeID    string
}

// ad is label || 0x00 || version || key_id || uint16(len(cluster_id)) ||
// cluster_id || uint16(len(node_id)) || node_id || uint16(len(name)) || name.
func (bd binding) ad(label string, version byte, id seal.KeyID, name []byte) []byte {
	ad := make([]byte, 0, len(label)+2+seal.KeyIDSize+6+len(bd.clusterID)+len(bd.nodeID)+len(name))
	ad = append(ad, label...)
	ad = append(ad, 0, version)
	ad = append(ad, id[:]...)
	for _, s := range [][]byte{[]byte(bd.clusterID), []byte(bd.nodeID), name} {
		ad = binary.BigEndian.AppendUint16(ad, uint16(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// sealed is version || key_id || nonce || ciphertext || tag.
func (bd binding) seal(k seal.Key, label string, name, pt []byte) []byte {
	id := k.ID()
	out := make([]byte, 0, 1+seal.KeyIDSize+seal.Overhead+len(pt))
	out = append(out, stateVersion)
	out = append(out, id[:]...)
	return seal.AppendSeal(out, k, pt, bd.ad(label, stateVersion, id, name))
}

func (bd binding) open(keys *Keyring, label string, name, b []byte) ([]byte, error) {
	if len(b) < 1+seal.KeyIDSize+seal.Overhead {
		return nil, fmt.Errorf("%w: %d bytes, too short to be sealed", ErrTampered, len(b))
	}
	if b[0] != stateVersion {
		return nil, fmt.Errorf("%w: unknown version %#x", ErrTampered, b[0])
	}
	id := seal.KeyID(b[1 : 1+seal.KeyIDSize])
	k, ok := keys.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("%w: key %v", ErrUnknownKey, id)
	}
	pt, err := seal.Open(k, b[1+seal.KeyIDSize:], bd.ad(label, stateVersion, id, name))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	return pt, nil
}

// sealedKeyID returns the key ID of a sealed value.
func sealedKeyID(b []byte) seal.KeyID {
	if len(b) < 1+seal.KeyIDSize {
		return seal.KeyID{}
	}
	return seal.KeyID(b[1 : 1+seal.KeyIDSize])
}

// readState reads the sealed log state from the conf bucket; ok is false
// when there is none (a new store, or one the previous release wrote).
func (bd binding) readState(tx *bbolt.Tx, keys *Keyring) (st logState, ok bool, err error) {
	v := tx.Bucket(bucketConf).Get(stateKey)
	if v == nil {
		return logState{}, false, nil
	}
	pt, err := bd.open(keys, stateADLabel, stateKey, v)
	if err != nil {
		return logState{}, true, err
	}
	st, err = parseLogState(pt)
	return st, true, err
}

// putState seals st under k and stores it in tx.
func (bd binding) putState(tx *bbolt.Tx, k seal.Key, st logState) error {
	return tx.Bucket(bucketConf).Put(stateKey, bd.seal(k, stateADLabel, stateKey, st.marshal()))
}

// stateAfter returns st brought up to date with the logs bucket of tx
// after entries lo..hi were stored (stored) or deleted: the runs change
// by that range, and the last term is read from the last entry.
func stateAfter(tx *bbolt.Tx, st logState, lo, hi uint64, stored bool) (logState, error) {
	if stored {
		st = st.add(lo, hi)
	} else {
		st = st.remove(lo, hi)
	}
	st.lastTerm = 0
	if last := st.last(); last != 0 {
		term, err := termAt(tx, last)
		if err != nil {
			return logState{}, err
		}
		st.lastTerm = term
	}
	return st, nil
}

// termAt decodes the term of the entry at idx in tx.
func termAt(tx *bbolt.Tx, idx uint64) (uint64, error) {
	v := tx.Bucket(bucketLogs).Get(indexKey(idx))
	if v == nil {
		return 0, fmt.Errorf("%w: entry %d is missing", ErrTampered, idx)
	}
	var l raft.Log
	if err := decodeLogValue(v, &l); err != nil {
		return 0, err
	}
	return l.Term, nil
}

// stateOfBolt derives the state of what the logs bucket holds now, for
// a store that has none yet, listing the stable values in conf.
func stateOfBolt(tx *bbolt.Tx) (logState, error) {
	var st logState
	if err := tx.Bucket(bucketConf).ForEach(func(k, _ []byte) error {
		if string(k) != string(stateKey) && len(st.values) < maxValues {
			st = st.withValue(k)
		}
		return nil
	}); err != nil {
		return logState{}, err
	}
	c := tx.Bucket(bucketLogs).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		i := binary.BigEndian.Uint64(k)
		if n := len(st.runs); n > 0 && st.runs[n-1].hi+1 == i {
			st.runs[n-1].hi = i
		} else {
			st = st.add(i, i)
		}
	}
	if last := st.last(); last != 0 {
		term, err := termAt(tx, last)
		if err != nil {
			return logState{}, err
		}
		st.lastTerm = term
	}
	return st, nil
}

// checkBolt reports how the logs bucket of tx differs from st, or "" if
// it holds exactly the entries st lists (and every stable value it lists).
func checkBolt(tx *bbolt.Tx, st logState) (string, error) {
	for _, name := range st.values {
		if tx.Bucket(bucketConf).Get([]byte(name)) == nil {
			return fmt.Sprintf("the stable value %q was removed", name), nil
		}
	}
	c := tx.Bucket(bucketLogs).Cursor()
	k, _ := c.Seek(indexKey(st.floor))
	for _, r := range st.runs {
		for i := r.lo; i <= r.hi; i++ {
			if k == nil {
				return fmt.Sprintf("entries %d to %d are missing (the log should end at %d)", i, st.last(), st.last()), nil
			}
			got := binary.BigEndian.Uint64(k)
			if got > i {
				return fmt.Sprintf("entries %d to %d are missing", i, min(got-1, r.hi)), nil
			}
			if got < i {
				return fmt.Sprintf("entry %d is present but was deleted", got), nil
			}
			k, _ = c.Next()
		}
	}
	if k != nil {
		return fmt.Sprintf("entry %d is present but was deleted", binary.BigEndian.Uint64(k)), nil
	}
	if last := st.last(); last != 0 {
		term, err := termAt(tx, last)
		if err != nil {
			return "", err
		}
		if term != st.lastTerm {
			return fmt.Sprintf("entry %d has term %d but was written with term %d", last, term, st.lastTerm), nil
		}
	}
	return "", nil
}

// hasNewRecord reports whether a sealed log (bolt's last, or one read from
// the WAL) was written by a store that keeps a log state: its record
// version is 2. Only a store whose state was removed holds one without it.
func hasNewRecord(logs ...*raft.Log) bool {
	for _, l := range logs {
		if l != nil && len(l.Data) > 0 && l.Data[0] == recordVersion {
			return true
		}
	}
	return false
}
