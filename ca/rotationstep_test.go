package ca

import "testing"

func TestNextNodeStep(t *testing.T) {
	tests := []struct {
		name string
		in   NodeCA
		want RotationStep
	}{
		{"no rotation, all current", NodeCA{FromIssuer: true, TrustCurrent: true}, StepNone},
		{"no rotation, old roots on disk", NodeCA{FromIssuer: true}, StepTrust},
		{"rotation started: renew first", NodeCA{TrustCurrent: true, RotationID: "r1"}, StepRenew},
		{"renew comes before the roots", NodeCA{RotationID: "r1"}, StepRenew},
		{"renewed, roots not yet rewritten", NodeCA{FromIssuer: true, RotationID: "r1"}, StepTrust},
		{"renewed and trusting: report", NodeCA{FromIssuer: true, TrustCurrent: true, RotationID: "r1"}, StepReport},
		{"reported", NodeCA{FromIssuer: true, TrustCurrent: true, RotationID: "r1", Recorded: true}, StepNone},
		{"recorded, but the chain changed", NodeCA{FromIssuer: true, RotationID: "r1", Recorded: true}, StepTrust},
		{"finished: old-root certificate renews", NodeCA{TrustCurrent: true}, StepRenew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextNodeStep(tt.in); got != tt.want {
				t.Errorf("NextNodeStep(%+v) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestNextNodeStepConverges follows the steps from every starting point,
// applying each one as a node does, and checks it reaches StepNone in at
// most three steps, in the order renew, trust, report.
func TestNextNodeStepConverges(t *testing.T) {
	for _, rot := range []string{"", "r1"} {
		for mask := range 8 {
			s := NodeCA{FromIssuer: mask&1 != 0, TrustCurrent: mask&2 != 0, Recorded: mask&4 != 0, RotationID: rot}
			var steps []RotationStep
			for step := NextNodeStep(s); step != StepNone; step = NextNodeStep(s) {
				if len(steps) == 3 {
					t.Fatalf("from %+v: no end after %v", s, steps)
				}
				if len(steps) > 0 && step <= steps[len(steps)-1] {
					t.Fatalf("from %+v: step %v after %v", s, step, steps)
				}
				steps = append(steps, step)
				switch step {
				case StepRenew:
					s.FromIssuer = true
				case StepTrust:
					s.TrustCurrent = true
				case StepReport:
					s.Recorded = true
				}
			}
		}
	}
}

func TestNextLeaderStep(t *testing.T) {
	tests := []struct {
		inProgress bool
		waiting    int
		want       RotationStep
	}{
		{false, 0, StepNone},
		{false, 3, StepNone},
		{true, 2, StepNone},
		{true, 1, StepNone},
		{true, 0, StepFinish},
	}
	for _, tt := range tests {
		if got := NextLeaderStep(tt.inProgress, tt.waiting); got != tt.want {
			t.Errorf("NextLeaderStep(%v, %d) = %v; want %v", tt.inProgress, tt.waiting, got, tt.want)
		}
	}
}
