package main

import (
	"flag"
	"strings"

	"github.com/holdfast/holdfast/api"
)

// filterKey is one key of a listing's --filter KEY=VALUE: match reports
// whether an item has the value.
type filterKey[T any] struct {
	key   string
	match func(item T, value string) bool
}

// filterFlag defines --filter on fs, for the keys of filters.
func filterFlag[T any](fs *flag.FlagSet, filters []filterKey[T]) *listFlag {
	f := &listFlag{what: "KEY=VALUE"}
	fs.Var(f, "filter", "show only what matches `KEY=VALUE`, KEY one of "+filterKeyNames(filters)+"; repeat for more (the same key: any value; different keys: all)")
	return f
}

func filterKeyNames[T any](filters []filterKey[T]) string {
	names := make([]string, len(filters))
	for i, f := range filters {
		names[i] = f.key
	}
	return strings.Join(names, ", ")
}

// parseFilters turns the --filter values into one test: an item matches
// when, for every key given, it matches one of the key's values.
func parseFilters[T any](args []string, filters []filterKey[T]) (func(T) bool, error) {
	given := map[string][]string{}
	var order []filterKey[T]
	for _, arg := range args {
		key, value, ok := strings.Cut(arg, "=")
		if !ok || value == "" {
			return nil, usagef("bad filter %q: want KEY=VALUE, KEY one of %s", arg, filterKeyNames(filters))
		}
		var fk *filterKey[T]
		for i := range filters {
			if filters[i].key == key {
				fk = &filters[i]
			}
		}
		if fk == nil {
			return nil, usagef("unknown filter key %q: want one of %s", key, filterKeyNames(filters))
		}
		if _, seen := given[key]; !seen {
			order = append(order, *fk)
		}
		given[key] = append(given[key], value)
	}
	return func(it T) bool {
		for _, fk := range order {
			hit := false
			for _, v := range given[fk.key] {
				if fk.match(it, v) {
					hit = true
					break
				}
			}
			if !hit {
				return false
			}
		}
		return true
	}, nil
}

// nodeFilters are the keys of 'node ls --filter'. A node has no name but
// its ID, so name is another word for id; both match a prefix.
var nodeFilters = []filterKey[api.Node]{
	{"role", func(n api.Node, v string) bool { return string(n.Role) == v }},
	{"status", func(n api.Node, v string) bool { return n.Status == v }},
	{"id", func(n api.Node, v string) bool { return strings.HasPrefix(n.ID, v) }},
	{"name", func(n api.Node, v string) bool { return strings.HasPrefix(n.ID, v) }},
}

// secretFilters are the keys of 'secret ls --filter': name and id match a
// prefix; label=K=V a label K with value V, label=K any label K.
var secretFilters = []filterKey[api.SecretMeta]{
	{"name", func(s api.SecretMeta, v string) bool { return strings.HasPrefix(s.Name, v) }},
	{"id", func(s api.SecretMeta, v string) bool { return strings.HasPrefix(s.ID, v) }},
	{"label", func(s api.SecretMeta, v string) bool {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := s.Labels[k]
		return ok && (!hasValue || got == want)
	}},
}
