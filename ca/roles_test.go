package ca

import "testing"

func TestOwnRecordTarget(t *testing.T) {
	tests := []struct {
		recorded Role
		removed  bool
		want     RoleTarget
	}{
		{RoleManager, false, RoleTarget{}},
		{RoleWorker, false, RoleTarget{Role: RoleWorker}},
		{"", false, RoleTarget{}},
		{RoleManager, true, RoleTarget{Removed: true}},
		{"", true, RoleTarget{Removed: true}},
	}
	for _, tt := range tests {
		if got := OwnRecordTarget(tt.recorded, tt.removed); got != tt.want {
			t.Errorf("OwnRecordTarget(%q, %v) = %+v; want %+v", tt.recorded, tt.removed, got, tt.want)
		}
	}
}

func TestNextRoleStep(t *testing.T) {
	tests := []struct {
		name    string
		target  RoleTarget
		have    Role
		missing bool
		want    RoleStep
	}{
		{"nothing asked", RoleTarget{}, RoleManager, false, RoleKeep},
		{"nothing asked of a worker", RoleTarget{}, RoleWorker, false, RoleKeep},
		{"manager stays manager", RoleTarget{Role: RoleManager}, RoleManager, false, RoleKeep},
		{"manager not in raft rejoins", RoleTarget{Role: RoleManager}, RoleManager, true, RoleRejoin},
		{"worker stays worker", RoleTarget{Role: RoleWorker}, RoleWorker, false, RoleKeep},
		{"demotion", RoleTarget{Role: RoleWorker}, RoleManager, false, RoleSwitch},
		{"demotion of a manager not in raft", RoleTarget{Role: RoleWorker}, RoleManager, true, RoleSwitch},
		{"promotion", RoleTarget{Role: RoleManager}, RoleWorker, false, RoleSwitch},
		{"removed manager", RoleTarget{Removed: true}, RoleManager, false, RoleWipe},
		{"removed worker", RoleTarget{Removed: true, Role: RoleWorker}, RoleWorker, false, RoleWipe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextRoleStep(tt.target, tt.have, tt.missing); got != tt.want {
				t.Errorf("NextRoleStep(%+v, %q, %v) = %v; want %v", tt.target, tt.have, tt.missing, got, tt.want)
			}
		})
	}
}
