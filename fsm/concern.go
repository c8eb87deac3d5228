package fsm

import "github.com/holdfast/holdfast/secrets"

// Which nodes an applied entry concerns.
//
// A node's view of the state (what a manager answers its long poll,
// manager's Self) holds its own record, the secrets granted to it (names
// and digests, not labels), the keyrings, every node's gossip address, the
// managers and the CA. Most entries are secret writes that change none of
// that for most nodes: waking every node's poll for each of them costs the
// managers work in proportion to writes × nodes. So the FSM records, for
// each applied entry, whether it may change every node's view or only some
// nodes' (their IDs), and wakes only the polls concerned.
//
// It is bookkeeping of this process, not replicated state: a restored
// snapshot concerns everyone.

// concerns is the FSM's record of the newest entry that concerned each
// node; guarded by FSM.mu.
type concerns struct {
	// all is the index of the newest entry that concerned every node.
	all uint64
	// node is, for a node, the index of the newest entry after all that
	// concerned it alone; emptied when an entry concerns everyone.
	node map[string]uint64
	// waiting is, for a node, the channel closed at the next entry that
	// concerns it (or everyone).
	waiting map[string]chan struct{}
}

// concernedBy returns the nodes that applying c to s (before it is
// applied) concerns, or everyone.
func concernedBy(s *State, c Command) (ids []string, everyone bool) {
	switch c := c.(type) {
	case *LeaderReady, *SecretLabels:
		return nil, false // nothing in a node's view (labels are not in it)
	case *SecretCreate:
		return c.Grants, false
	case *SecretGrant:
		return []string{c.NodeID}, false
	case *SecretRevoke:
		return []string{c.NodeID}, false
	case *SecretRemove:
		if sec, ok := s.Secrets.Get(c.Ref); ok {
			return grantsOf(sec), false
		}
		return nil, false
	}
	return nil, true
}

func grantsOf(sec *secrets.Secret) []string {
	return append([]string(nil), sec.Grants...)
}

// concernLocked records that the entry at index concerned ids, or
// everyone, and wakes their waiters. f.mu must be held for writing.
func (f *FSM) concernLocked(index uint64, ids []string, everyone bool) {
	c := &f.concerns
	if everyone {
		c.all = index
		c.node = nil
		for id, ch := range c.waiting {
			close(ch)
			delete(c.waiting, id)
		}
		return
	}
	for _, id := range ids {
		if c.node == nil {
			c.node = make(map[string]uint64)
		}
		c.node[id] = index
		if ch, ok := c.waiting[id]; ok {
			close(ch)
			delete(c.waiting, id)
		}
	}
}

// Concerning returns the index of the newest applied entry that concerned
// node id (or everyone), and a channel closed when the next such entry is
// applied, a snapshot restored, or the FSM stops at an entry it cannot
// apply. An entry that concerns other nodes only does not close it.
func (f *FSM) Concerning(id string) (uint64, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &f.concerns
	index := max(c.all, c.node[id])
	ch, ok := c.waiting[id]
	if !ok {
		if c.waiting == nil {
			c.waiting = make(map[string]chan struct{})
		}
		ch = make(chan struct{})
		c.waiting[id] = ch
	}
	return index, ch
}
