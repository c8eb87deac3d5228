// Package spread places many nodes over a few targets stably and evenly:
// which manager a worker long-polls first, and which gossip peers a
// worker's view names. It is pure: the same inputs give the same answer
// in every process, so every manager and every worker agree without
// talking.
//
// Three tools:
//
//   - Order ranks targets for a key by rendezvous (highest random weight)
//     hashing: each key gets its own order, the first targets are spread
//     evenly over the keys, and a target that leaves moves only the keys
//     that ranked it first (each to its own second choice, again spread).
//     A caller tries the targets in that order, falling back to the next
//     on failure.
//   - Hash places an ID on a ring; a caller that sorts its members by Hash
//     once can pick, for any key, the few members after the key's own
//     place in O(log n + k), and a member joining or leaving changes at
//     most one of them.
//   - Picker is Order with memory for a retry loop: the first choice
//     while it answers, the next on each failure, and back to the first
//     choice a jittered while later.
//
// The hash is a fixed function of the bytes (FNV-1a with a 64-bit
// finalizer), not a secret: a node that chooses its own ID could place
// itself; node IDs are chosen by the node, so the spread is only as even
// as the IDs are random. It must not change between releases without
// care: a change reorders every worker's managers at once.
package spread
