package spread

import (
	"hash/fnv"
	"slices"
)

// Hash places id on the ring.
func Hash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return mix(h.Sum64())
}

// score is target's weight for key.
func score(key, target string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(target))
	return mix(h.Sum64())
}

// mix is splitmix64's finalizer: FNV's low bits alone spread poorly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Order returns a copy of targets ranked for key, best first: by
// descending rendezvous score of (key, id(target)), ties by id. It does
// not change targets.
func Order[T any](key string, targets []T, id func(T) string) []T {
	type ranked struct {
		t     T
		id    string
		score uint64
	}
	rs := make([]ranked, len(targets))
	for i, t := range targets {
		rs[i] = ranked{t: t, id: id(t), score: score(key, id(t))}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return compare(a.id, b.id)
	})
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = r.t
	}
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
