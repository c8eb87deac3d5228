package manager

import (
	"context"

	"github.com/holdfast/holdfast/fsm"
)

// keyFeed keeps a manager's key view (keyBox) in step with its state.
type keyFeed struct {
	state stateView
	self  string // this node's ID
	keys  *keyBox
}

func (f *keyFeed) Run(ctx context.Context) error {
	for {
		ch := f.state.Changed()
		var v *keyView
		current, _, _ := f.keys.get()
		f.state.Read(func(s *fsm.State, _ uint64) {
			if s.Cluster != nil && !current.matches(s, f.self) {
				v = keyViewOf(s, f.self)
			}
		})
		if v != nil {
			f.keys.set(v)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
