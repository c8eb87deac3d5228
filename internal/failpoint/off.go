//go:build !failpoints

package failpoint

// Enabled reports whether this build has failpoints (built with -tags
// failpoints).
const Enabled = false

// Hit does nothing in a product build.
func Hit(string) {}
