package ca

// RotationStep is the next thing to do about the cluster's CA, decided by
// NextNodeStep (every node) or NextLeaderStep (the leader).
type RotationStep int

const (
	// StepNone: nothing to do until the CA view changes.
	StepNone RotationStep = iota
	// StepRenew: the node's certificate is not from the issuing root;
	// renew it (the issuing root signs the new one).
	StepRenew
	// StepTrust: the node's roots or presented chain are not the ones the
	// stage says; rewrite them, keeping the certificate and key.
	StepTrust
	// StepReport: the node holds a certificate from the new root that the
	// rotation has not recorded yet; report it.
	StepReport
	// StepFinish: every node holds a certificate from the new root; the
	// leader finishes the rotation (new root alone, new join tokens).
	StepFinish
)

func (s RotationStep) String() string {
	switch s {
	case StepNone:
		return "none"
	case StepRenew:
		return "renew"
	case StepTrust:
		return "trust"
	case StepReport:
		return "report"
	case StepFinish:
		return "finish"
	}
	return "unknown"
}

// NodeCA is what one node knows of itself against the cluster's CA view.
type NodeCA struct {
	// FromIssuer: the node's certificate is signed by the issuing root
	// (the new root during a rotation).
	FromIssuer bool
	// TrustCurrent: the node's files hold the roots to trust and the
	// chain to present that the view says.
	TrustCurrent bool
	// RotationID names the rotation in progress; empty when none is.
	RotationID string
	// Recorded: the rotation has recorded this node (or the node has
	// just reported itself).
	Recorded bool
}

// NextNodeStep is the next step of a node following the cluster's CA: a
// certificate from the issuing root first, then the stage's roots and
// chain, then, during a rotation, the report. A node repeats it, acting on
// each answer, until it answers StepNone.
func NextNodeStep(s NodeCA) RotationStep {
	switch {
	case !s.FromIssuer:
		return StepRenew
	case !s.TrustCurrent:
		return StepTrust
	case s.RotationID != "" && !s.Recorded:
		return StepReport
	}
	return StepNone
}

// NextLeaderStep is the leader's step of a rotation: finish once it is in
// progress and no node is waited for (waiting counts the nodes without a
// recorded new-root certificate). Finishing is safe to repeat across
// leader changes: the finish names the rotation, and the state refuses a
// second one.
func NextLeaderStep(inProgress bool, waiting int) RotationStep {
	if inProgress && waiting == 0 {
		return StepFinish
	}
	return StepNone
}
