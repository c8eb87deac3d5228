package raftlog

import (
	"encoding/binary"
	"fmt"
)

// Batch trailers of a version 3 WAL (FORMAT.md, sections 1.1 and 1.2).
//
// Appending can never reveal a cut: every earlier state of an
// append-only file is a prefix of the current one, so a file cut back to
// one of them looks like a crash there. So each batch's one contiguous
// write also rewrites the trailers of the two batches before it: the
// trailer of batch k says how far batch k reached and whether a later
// batch was written after it (Followed) and made durable with yet
// another after that (Confirmed). A file cut by two batches or more ends
// in a Confirmed trailer, which no crash leaves at the end.

// walTrailerState says what was written after a batch.
type walTrailerState byte

const (
	// trailerOpen: nothing after the batch yet.
	trailerOpen walTrailerState = 1
	// trailerFollowed: the next batch was written with this trailer.
	trailerFollowed walTrailerState = 2
	// trailerConfirmed: the batch after the next was written with this
	// trailer, so the next batch had been made durable.
	trailerConfirmed walTrailerState = 3
)

func (s walTrailerState) String() string {
	switch s {
	case trailerOpen:
		return "open"
	case trailerFollowed:
		return "followed"
	case trailerConfirmed:
		return "confirmed"
	}
	return fmt.Sprintf("state %d", byte(s))
}

// walTrailerPlain is the length of a trailer's plaintext:
// uint64(last) || uint64(last_term) || uint8(state).
const walTrailerPlain = 8 + 8 + 1

// walTrailer is an opened trailer: the last entry of its batch (for
// T_0, the last entry raft.db held when the generation started) and its
// state.
type walTrailer struct {
	last, lastTerm uint64
	state          walTrailerState
}

func (t walTrailer) with(s walTrailerState) walTrailer {
	t.state = s
	return t
}

func (t walTrailer) marshal() []byte {
	b := make([]byte, 0, walTrailerPlain)
	b = binary.BigEndian.AppendUint64(b, t.last)
	b = binary.BigEndian.AppendUint64(b, t.lastTerm)
	return append(b, byte(t.state))
}

func parseWALTrailer(b []byte) (walTrailer, error) {
	if len(b) != walTrailerPlain {
		return walTrailer{}, fmt.Errorf("%w: malformed WAL trailer", ErrTampered)
	}
	t := walTrailer{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), walTrailerState(b[16])}
	if t.state < trailerOpen || t.state > trailerConfirmed {
		return walTrailer{}, fmt.Errorf("%w: malformed WAL trailer", ErrTampered)
	}
	return t, nil
}

// walChainProblem says what is wrong with the trailers T_0..T_r of a
// generation's intact batches, or "" if a writer and a crash can leave
// them so. After batch n is durable they read Confirmed up to T_{n-2},
// then T_{n-1} Followed, T_n Open. The write of batch n+1 rewrites
// T_{n-1} (Confirmed) and T_n (Followed) and adds batch n+1 with T_{n+1}
// (Open); a power cut leaves each trailer's sector old or new. So the
// last intact batch r is n+1 (T_r Open, T_{r-1} Open or Followed,
// T_{r-2} Followed or Confirmed) or n (T_r Open or Followed, T_{r-1}
// Followed or Confirmed, T_{r-2} Confirmed), and every trailer before
// T_{r-2} is Confirmed. A Confirmed T_r means a batch after r was made
// durable and is gone.
func walChainProblem(ts []walTrailer) string {
	r := len(ts) - 1
	if r < 0 {
		return "its first trailer does not authenticate"
	}
	state := func(i int) walTrailerState {
		if i < 0 {
			return 0 // no such batch: anything goes
		}
		return ts[i].state
	}
	in := func(s walTrailerState, ok ...walTrailerState) bool {
		if s == 0 {
			return true
		}
		for _, o := range ok {
			if s == o {
				return true
			}
		}
		return false
	}
	for i := 0; i < r-2; i++ {
		if ts[i].state != trailerConfirmed {
			return fmt.Sprintf("the trailer of batch %d (entry %d) is %v, but later batches were made durable", i, ts[i].last, ts[i].state)
		}
	}
	if ts[r].state == trailerConfirmed {
		return fmt.Sprintf("it ends with batch %d (entry %d), whose trailer says a later batch was made durable: entries after %d were removed", r, ts[r].last, ts[r].last)
	}
	cut := ts[r].state == trailerOpen && in(state(r-1), trailerOpen, trailerFollowed) && in(state(r-2), trailerFollowed, trailerConfirmed)
	whole := in(ts[r].state, trailerOpen, trailerFollowed) && in(state(r-1), trailerFollowed, trailerConfirmed) && in(state(r-2), trailerConfirmed)
	if cut || whole {
		return ""
	}
	return fmt.Sprintf("the trailers of its last batches (up to batch %d, entry %d) read %v, %v, %v, which no write or crash leaves", r, ts[r].last, state(r-2), state(r-1), ts[r].state)
}
