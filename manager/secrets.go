package manager

import (
	"context"
	"errors"

	"github.com/holdfast/holdfast/api"
	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/fsm"
	"github.com/holdfast/holdfast/secrets"
)

// secretError gives a secrets error its HTTP status.
func secretError(err error) error {
	if err == nil {
		return nil
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return err
	}
	code := api.CodeInvalidArgument
	switch {
	case errors.Is(err, secrets.ErrNameTaken), errors.Is(err, secrets.ErrIDTaken):
		code = api.CodeAlreadyExists
	case errors.Is(err, secrets.ErrTooLarge):
		code = api.CodeTooLarge
	case errors.Is(err, secrets.ErrNotFound), errors.Is(err, secrets.ErrUnknownNode):
		code = api.CodeNotFound
	}
	return api.Wrap(code, err)
}

// isSecretsError reports whether err comes from package secrets' rules.
func isSecretsError(err error) bool {
	for _, e := range []error{secrets.ErrInvalidName, secrets.ErrTooLarge, secrets.ErrEmpty, secrets.ErrInvalidLabel,
		secrets.ErrNameTaken, secrets.ErrIDTaken, secrets.ErrNotFound, secrets.ErrUnknownNode, secrets.ErrInvalidID, secrets.ErrMalformed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// CreateSecret stores a new secret; the data never appears in a response,
// a log line or an error.
func (a *secretsAPI) CreateSecret(ctx context.Context, req api.SecretCreateRequest) (*api.SecretID, error) {
	if err := secrets.ValidateName(req.Name); err != nil {
		return nil, secretError(err)
	}
	if err := secrets.ValidateData(req.Data); err != nil {
		return nil, secretError(err)
	}
	if err := secrets.ValidateLabels(req.Labels); err != nil {
		return nil, secretError(err)
	}
	id := ca.NewID()
	cmd := &fsm.SecretCreate{CreateCmd: secrets.CreateCmd{ID: id, Name: req.Name, Data: req.Data, Labels: req.Labels, Grants: req.Grants, CreatedAt: a.now().UTC()}}
	if err := a.writes.apply(ctx, cmd); err != nil {
		return nil, secretError(err)
	}
	return &api.SecretID{ID: id}, nil
}

// Secrets lists every secret's metadata.
func (a *secretsAPI) Secrets(ctx context.Context) ([]api.SecretMeta, error) {
	var out []api.SecretMeta
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		out = s.Secrets.List()
		return nil
	})
	if out == nil {
		out = []api.SecretMeta{}
	}
	return out, err
}

// Secret returns one secret's metadata, by name or ID.
func (a *secretsAPI) Secret(ctx context.Context, ref string) (*api.SecretMeta, error) {
	var out api.SecretMeta
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		sec, ok := s.Secrets.Get(ref)
		if !ok {
			return api.Errorf(api.CodeNotFound, "secret %s not found", ref)
		}
		out = sec.Meta()
		return nil
	})
	return &out, err
}

func (a *secretsAPI) RemoveSecret(ctx context.Context, ref string) error {
	return secretError(a.writes.apply(ctx, &fsm.SecretRemove{RemoveCmd: secrets.RemoveCmd{Ref: ref}}))
}

func (a *secretsAPI) SetSecretLabels(ctx context.Context, ref string, labels map[string]string) error {
	if err := secrets.ValidateLabels(labels); err != nil {
		return secretError(err)
	}
	return secretError(a.writes.apply(ctx, &fsm.SecretLabels{SetLabelsCmd: secrets.SetLabelsCmd{Ref: ref, Labels: labels, At: a.now().UTC()}}))
}

func (a *secretsAPI) GrantSecret(ctx context.Context, ref, nodeID string) error {
	return secretError(a.writes.apply(ctx, &fsm.SecretGrant{GrantCmd: secrets.GrantCmd{Ref: ref, NodeID: a.resolveSelf(nodeID), At: a.now().UTC()}}))
}

func (a *secretsAPI) RevokeSecret(ctx context.Context, ref, nodeID string) error {
	return secretError(a.writes.apply(ctx, &fsm.SecretRevoke{RevokeCmd: secrets.RevokeCmd{Ref: ref, NodeID: a.resolveSelf(nodeID), At: a.now().UTC()}}))
}

// resolveSelf turns "self" into this node's ID.
func (a *secretsAPI) resolveSelf(id string) string {
	if self := a.self(); self != "" && id == "self" {
		return self
	}
	return id
}

// errNotGranted is the one answer for a secret a node may not fetch,
// whether or not it exists.
func errNotGranted(id, node string) error {
	return api.Errorf(api.CodePermissionDenied, "secret %s is not granted to node %s", id, node)
}

// FetchSecret gives a node the data of a secret granted to it, and nothing
// else: any other secret, existing or not, is errNotGranted.
func (a *nodeAPI) FetchSecret(ctx context.Context, from api.Peer, id string) (*api.SecretData, error) {
	var out *api.SecretData
	err := a.writes.readState(ctx, func(s *fsm.State) error {
		sec, ok := s.Secrets.Get(id)
		if !ok || sec.ID != id || !sec.GrantedTo(from.NodeID) {
			return errNotGranted(id, from.NodeID)
		}
		out = &api.SecretData{ID: sec.ID, Name: sec.Name, Digest: sec.Digest, Data: sec.Data}
		return nil
	})
	return out, err
}

// grantedRefs lists, without data, the secrets granted to nodeID.
func grantedRefs(s *fsm.State, nodeID string) []api.SecretRef {
	return refsOf(s.Secrets.GrantedTo(nodeID))
}

func refsOf(granted []*secrets.Secret) []api.SecretRef {
	out := []api.SecretRef{}
	for _, sec := range granted {
		out = append(out, api.SecretRef{ID: sec.ID, Name: sec.Name, Digest: sec.Digest})
	}
	return out
}
