package secrets

import (
	"slices"
	"strings"
)

// Ref names a secret granted to a node without its data: what a manager
// tells a worker in its self view.
type Ref struct {
	ID, Name, Digest string
}

// Fingerprint identifies a set of granted secrets by ID, name and digest,
// whatever their order: equal fingerprints, nothing to deliver again.
func Fingerprint(refs []Ref) string {
	parts := make([]string, 0, len(refs))
	for _, r := range refs {
		parts = append(parts, r.ID+"/"+r.Name+"/"+r.Digest)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// Fetches decides what a node that holds have (by ID) must do to hold
// exactly the secrets granted to it, refs: keep the secrets it has whose
// digest matches (a secret's data never changes, so a matching digest is
// the same secret), and fetch the others. Secrets in have that refs do not
// name are dropped. keep is a new map; have is not changed.
func Fetches(have map[string]*Secret, refs []Ref) (keep map[string]*Secret, fetch []Ref) {
	keep = map[string]*Secret{}
	for _, r := range refs {
		if s, ok := have[r.ID]; ok && s.Digest == r.Digest {
			keep[r.ID] = s
			continue
		}
		fetch = append(fetch, r)
	}
	return keep, fetch
}
