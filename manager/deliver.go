package manager

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/secrets"
)

// secretsDir is where this node writes the secrets granted to it.
func (n *Node) secretsDir() secrets.Dir { return secrets.Dir{Path: n.cfg.SecretsDir} }

// checkSecretsDir creates the secrets directory and warns when it is not a
// tmpfs: delivered secrets are plaintext files.
func (n *Node) checkSecretsDir() {
	if _, _, err := n.secretsDir().Sync(nil); err != nil {
		n.logger.Warn("cannot prepare the secrets directory", "dir", n.cfg.SecretsDir, "err", err)
		return
	}
	if tmpfs, err := secrets.OnTmpfs(n.cfg.SecretsDir); err == nil && !tmpfs {
		n.logger.Warn("the secrets directory is not on a tmpfs: granted secrets will be written to disk in plaintext", "dir", n.cfg.SecretsDir)
	}
}

// syncSecrets writes exactly the granted secrets; it logs names, never data.
func (n *Node) syncSecrets(granted []*secrets.Secret) {
	written, removed, err := n.secretsDir().Sync(granted)
	if len(written) > 0 || len(removed) > 0 {
		n.logger.Info("secrets delivered", "written", written, "removed", removed)
	}
	if err != nil {
		n.logger.Error("secret delivery incomplete", "err", err)
	}
}

// fingerprint identifies a set of granted secrets by ID and digest.
func fingerprint(refs []api.SecretRef) string {
	parts := make([]string, 0, len(refs))
	for _, r := range refs {
		parts = append(parts, r.ID+"/"+r.Name+"/"+r.Digest)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// deliverFromFSM keeps a manager's secrets directory in step with its own
// replicated state.
func (n *Node) deliverFromFSM(ctx context.Context, inc *incarnation, rn *raftNode) {
	last := "\x00" // never a fingerprint: sync once at start
	for {
		ch := rn.fsm.Changed()
		var granted []*secrets.Secret
		var fp string
		rn.fsm.Read(func(s *fsm.State, _ uint64) {
			if s.Cluster == nil {
				return
			}
			granted = s.Secrets.GrantedTo(inc.info.NodeID)
		})
		fp = fingerprint(refsOf(granted))
		if fp != last {
			n.syncSecrets(granted)
			last = fp
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// workerSecrets is a worker's copy of the secrets granted to it, fetched
// from managers over the node API.
type workerSecrets struct {
	have map[string]*secrets.Secret // by ID
	last string
}

// deliverFromView fetches what a worker lacks of the secrets in view and
// writes the granted set. It returns false when a fetch failed (the caller
// tries again with the next view).
func (n *Node) deliverFromView(ctx context.Context, inc *incarnation, c *api.Client, ws *workerSecrets, refs []api.SecretRef) bool {
	fp := fingerprint(refs)
	if fp == ws.last {
		return true
	}
	next := map[string]*secrets.Secret{}
	ok := true
	for _, r := range refs {
		if s, found := ws.have[r.ID]; found && s.Digest == r.Digest {
			next[r.ID] = s
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
		d, err := c.FetchSecret(fctx, r.ID)
		cancel()
		if err != nil {
			n.logger.Warn("cannot fetch a granted secret", "secret", r.Name, "err", err)
			ok = false
			continue
		}
		s, err := secrets.New(d.ID, d.Name, d.Data, nil, nil, time.Time{})
		if err != nil || s.Digest != r.Digest {
			n.logger.Error("a manager sent a secret that does not match its digest", "secret", r.Name)
			ok = false
			continue
		}
		next[r.ID] = s
	}
	granted := make([]*secrets.Secret, 0, len(next))
	for _, s := range next {
		granted = append(granted, s)
	}
	n.syncSecrets(granted)
	ws.have = next
	if ok {
		ws.last = fp
	}
	return ok
}
