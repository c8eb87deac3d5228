package overlaykeys

import "time"

// Schedule is what rotating the keyrings needs at one moment: which rings
// are due now, and when the next of the others falls due.
type Schedule struct {
	// Due are the subsystems whose rings should rotate now, in
	// Subsystems order.
	Due []Subsystem
	// Next is the earliest time a ring that is not due now falls due; zero
	// when every ring is due.
	Next time.Time
}

// Plan decides which of the rings rotate at now with the given interval.
// It is a pure function of the replicated rings (their RotatedAt) and the
// clock: a new leader that reads the same rings decides the same, so it
// neither rotates twice nor skips a rotation. A missing or empty ring is
// due at once.
func (k Keyrings) Plan(interval time.Duration, now time.Time) Schedule {
	var s Schedule
	for _, sub := range Subsystems {
		due, at := k.Ring(sub).Due(interval, now)
		if due {
			s.Due = append(s.Due, sub)
			continue
		}
		if s.Next.IsZero() || at.Before(s.Next) {
			s.Next = at
		}
	}
	return s
}
