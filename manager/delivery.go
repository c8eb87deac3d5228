package manager

import (
	"context"
	"log/slog"
	"time"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/secrets"
)

// secretsDir is where this node writes the secrets granted to it.
func (c *Config) secretsDir() secrets.Dir { return secrets.Dir{Path: c.SecretsDir} }

// secretWriter writes exactly the secrets granted to this node into its
// secrets directory; it logs names, never data.
type secretWriter struct {
	dir secrets.Dir
	log *slog.Logger
}

func (w secretWriter) write(granted []*secrets.Secret) {
	written, removed, err := w.dir.Sync(granted)
	if len(written) > 0 || len(removed) > 0 {
		w.log.Info("secrets delivered", "written", written, "removed", removed)
	}
	if err != nil {
		w.log.Error("secret delivery incomplete", "err", err)
	}
}

// checkSecretsDir creates the secrets directory and warns when it is not a
// tmpfs: delivered secrets are plaintext files.
func checkSecretsDir(dir string, log *slog.Logger) {
	if _, _, err := (secrets.Dir{Path: dir}).Sync(nil); err != nil {
		log.Warn("cannot prepare the secrets directory", "dir", dir, "err", err)
		return
	}
	if tmpfs, err := secrets.OnTmpfs(dir); err == nil && !tmpfs {
		log.Warn("the secrets directory is not on a tmpfs: granted secrets will be written to disk in plaintext", "dir", dir)
	}
}

// secretRefs is the secrets package's reading of a self view's refs.
func secretRefs(in []api.SecretRef) []secrets.Ref {
	out := make([]secrets.Ref, len(in))
	for i, r := range in {
		out[i] = secrets.Ref{ID: r.ID, Name: r.Name, Digest: r.Digest}
	}
	return out
}

// secretRefsOf names the granted secrets.
func secretRefsOf(granted []*secrets.Secret) []secrets.Ref {
	out := make([]secrets.Ref, len(granted))
	for i, s := range granted {
		out[i] = secrets.Ref{ID: s.ID, Name: s.Name, Digest: s.Digest}
	}
	return out
}

// managerDelivery keeps a manager's secrets directory in step with its
// own replicated state.
type managerDelivery struct {
	out   secretWriter
	state stateView
	self  string
}

func (d *managerDelivery) Run(ctx context.Context) error {
	last := "\x00" // never a fingerprint: sync once at start
	for {
		ch := d.state.Changed()
		var granted []*secrets.Secret
		d.state.Read(func(s *fsm.State, _ uint64) {
			if s.Cluster == nil {
				return
			}
			granted = s.Secrets.GrantedTo(d.self)
		})
		if fp := secrets.Fingerprint(secretRefsOf(granted)); fp != last {
			d.out.write(granted)
			last = fp
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// secretFetcher fetches one secret granted to this node from a manager
// (*api.Client over the node API).
type secretFetcher interface {
	FetchSecret(ctx context.Context, id string) (*api.SecretData, error)
}

// workerDelivery is a worker's copy of the secrets granted to it, fetched
// from managers over the node API; the follower feeds it each self view.
type workerDelivery struct {
	out          secretWriter
	fetchTimeout time.Duration
	have         map[string]*secrets.Secret // by ID
	last         string
}

// deliver fetches what the worker lacks of the secrets in refs and writes
// the granted set. It returns false when a fetch failed (the caller tries
// again with the next view).
func (w *workerDelivery) deliver(ctx context.Context, c secretFetcher, refs []api.SecretRef) bool {
	want := secretRefs(refs)
	fp := secrets.Fingerprint(want)
	if fp == w.last {
		return true
	}
	next, fetch := secrets.Fetches(w.have, want)
	ok := true
	for _, r := range fetch {
		fctx, cancel := context.WithTimeout(ctx, w.fetchTimeout)
		d, err := c.FetchSecret(fctx, r.ID)
		cancel()
		if err != nil {
			w.out.log.Warn("cannot fetch a granted secret", "secret", r.Name, "err", err)
			ok = false
			continue
		}
		s, err := secrets.New(d.ID, d.Name, d.Data, nil, nil, time.Time{})
		if err != nil || s.Digest != r.Digest {
			w.out.log.Error("a manager sent a secret that does not match its digest", "secret", r.Name)
			ok = false
			continue
		}
		next[r.ID] = s
	}
	granted := make([]*secrets.Secret, 0, len(next))
	for _, s := range next {
		granted = append(granted, s)
	}
	w.out.write(granted)
	w.have = next
	if ok {
		w.last = fp
	}
	return ok
}
