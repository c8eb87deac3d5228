package main

import (
	"fmt"
	"time"

	"github.com/holdfast/holdfast/api"
)

// clockSkewText is status's clock line: the manager's offset from the
// median of the managers' clocks, or why it has none.
func clockSkewText(s *api.ClockSkew) string {
	if s == nil {
		return "unknown (no other manager answered yet)"
	}
	off := time.Duration(s.OffsetSeconds * float64(time.Second)).Round(time.Millisecond)
	dir := "ahead of"
	if off < 0 {
		dir, off = "behind", -off
	}
	text := fmt.Sprintf("%s %s the managers' median clock (%d peers; allowed %s)", off, dir, s.Peers, time.Duration(s.AllowedSeconds*float64(time.Second)))
	if s.Refusing {
		text += ": TOO FAR, refusing to issue certificates"
	}
	return text
}
