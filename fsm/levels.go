package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/holdfast/holdfast/internal/lenprefix"
)

// A level names what a build can apply: each level is a set of command
// types and versions, and every level knows all that the levels below it
// know. A manager advertises its level; the cluster version is the lowest
// level among the managers (the manager package computes it), and the
// leader proposes only encodings that the cluster version knows
// (Downgrade, BatchAllowed), so no manager is ever sent an entry it cannot
// apply. Levels are part of the upgrade contract: never renumber one, and
// give a new command type or version a new level.
const (
	// Level1 is the first command set: every type up to 22 at version 1.
	// A manager that advertises no level (a build from before levels)
	// counts as Level1.
	Level1 = 1
	// Level2 adds secret.create version 2 (the data as raw bytes).
	Level2 = 2
	// Level3 adds batch entries (TypeBatch).
	Level3 = 3
	// Level4 adds node.level, with which the leader records each
	// manager's level, and version 2 of cluster.init, node.add and
	// node.update, which record a node's latest certificate (serial and
	// key hash); builds of this level stop at an entry they cannot apply
	// (ErrNeedsUpgrade) rather than skip it.
	Level4 = 4
	// Level5 adds node.addr, with which a node restarted at another
	// address has it recorded, refused alike on every replica when it is
	// no reachable HOST:PORT or another manager's.
	Level5 = 5

	// LowestLevel is what a manager that advertises nothing counts as.
	LowestLevel = Level1
	// CurrentLevel is this build's level.
	CurrentLevel = Level5
)

// CommandVersion is one command type at one version.
type CommandVersion struct {
	Type    Type
	Version uint8
}

func (cv CommandVersion) String() string { return fmt.Sprintf("%s/%d", cv.Type, cv.Version) }

// levelAdds is what each level adds to the one below it.
var levelAdds = [...][]CommandVersion{
	Level1: {
		{TypeClusterInit, 1}, {TypeNodeAdd, 1}, {TypeNodeSetRole, 1}, {TypeNodeRemove, 1},
		{TypeTokenRotate, 1}, {TypeSettingsUpdate, 1}, {TypeNodeUpdate, 1}, {TypeLeaderReady, 1},
		{TypeSecretCreate, 1}, {TypeSecretRemove, 1}, {TypeSecretLabels, 1}, {TypeSecretGrant, 1},
		{TypeSecretRevoke, 1}, {TypeAutolockSet, 1}, {TypeKeysRotate, 1},
		{TypeCARotateStart, 1}, {TypeCARotateNode, 1}, {TypeCARotateFinish, 1},
	},
	Level2: {{TypeSecretCreate, 2}},
	Level3: {{TypeBatch, 1}},
	Level4: {{TypeNodeLevel, 1}, {TypeClusterInit, 2}, {TypeNodeAdd, 2}, {TypeNodeUpdate, 2}},
	Level5: {{TypeNodeAddr, 1}},
}

// introduced maps each command version to the level that added it.
var introduced = func() map[CommandVersion]int {
	m := map[CommandVersion]int{}
	for l, adds := range levelAdds {
		for _, cv := range adds {
			m[cv] = l
		}
	}
	return m
}()

// Knows reports whether a build of the given level can apply command type
// t at version v.
func Knows(level int, t Type, v uint8) bool {
	l, ok := introduced[CommandVersion{t, v}]
	return ok && l <= level
}

// Commands returns what a build of the given level can apply, ordered by
// type and version: what a manager advertises besides its level.
func Commands(level int) []CommandVersion {
	var out []CommandVersion
	for l := Level1; l <= min(level, CurrentLevel); l++ {
		out = append(out, levelAdds[l]...)
	}
	slices.SortFunc(out, func(a, b CommandVersion) int {
		if a.Type != b.Type {
			return int(a.Type) - int(b.Type)
		}
		return int(a.Version) - int(b.Version)
	})
	return out
}

// BatchAllowed reports whether a batch entry may be proposed at cluster
// version cv.
func BatchAllowed(cv int) bool { return cv >= Level3 }

// ErrNeedsUpgrade is an entry this build cannot apply: a command type or
// version it does not know, written by a newer build.
var ErrNeedsUpgrade = errors.New("needs upgrade")

// ErrClusterVersion is a command that the cluster version does not allow
// yet, and that has no older encoding every manager knows.
var ErrClusterVersion = errors.New("not allowed at the cluster version")

// UpgradeError says which entry a manager stopped at and why.
type UpgradeError struct {
	Index   uint64
	Command CommandVersion
	Level   int // of the build that stopped
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("needs upgrade: log entry %d is %s, which this build (level %d) cannot apply; restart this manager on a build that knows it",
		e.Index, e.Command, e.Level)
}

func (e *UpgradeError) Unwrap() error { return ErrNeedsUpgrade }

// unknownIn returns the first command in encoded entry b (the entry
// itself, or a command inside a batch) that a build of the given level
// cannot apply. ok is false when it knows every one, or when b is too
// malformed to name a command (Decode then says why).
func unknownIn(b []byte, level int) (CommandVersion, bool) {
	if len(b) < headerLen {
		return CommandVersion{}, false
	}
	cv := CommandVersion{Type(binary.BigEndian.Uint16(b[1:3])), b[3]}
	if b[0] != envelopeFormat {
		// A newer envelope: its header may mean something else.
		return cv, b[0] > envelopeFormat
	}
	if !Knows(level, cv.Type, cv.Version) {
		return cv, true
	}
	if cv.Type != TypeBatch {
		return CommandVersion{}, false
	}
	parts, err := lenprefix.Split(b[headerLen:], 0)
	if err != nil {
		return CommandVersion{}, false
	}
	for _, p := range parts {
		if sub, ok := unknownIn(p, level); ok {
			return sub, true
		}
	}
	return CommandVersion{}, false
}

// Check returns an error wrapping ErrUnknownCommand or
// ErrUnsupportedVersion when encoded command b is a type or version this
// build does not know. The leader checks what it is sent before
// proposing it: such an entry would stop every manager.
func Check(b []byte) error {
	if cv, ok := unknownIn(b, CurrentLevel); ok {
		if _, known := registry[cv.Type]; !known {
			return fmt.Errorf("%w: %d", ErrUnknownCommand, uint16(cv.Type))
		}
		return fmt.Errorf("%w: %s", ErrUnsupportedVersion, cv)
	}
	return nil
}

// Downgrade returns encoded command b in an encoding that a cluster at
// version cv can apply: b itself when every manager knows it, else the
// same command at an older version that they know (secret.create version
// 1 for version 2). A command with no such encoding is ErrClusterVersion.
// A batch is never downgraded: the leader makes batches after Downgrade,
// and only when BatchAllowed.
func Downgrade(b []byte, cv int) ([]byte, error) {
	u, ok := unknownIn(b, cv)
	if !ok {
		return b, nil
	}
	if u.Type == TypeSecretCreate && u.Version == 2 && Knows(cv, TypeSecretCreate, 1) && len(b) >= headerLen && b[3] == 2 {
		c, err := Decode(b)
		if err != nil {
			return nil, err
		}
		return encodeJSONVersion(c, 1)
	}
	if u.Version == 2 && Knows(cv, u.Type, 1) && len(b) >= headerLen && b[3] == 2 {
		if down, ok, err := withoutCertRecord(b); ok || err != nil {
			return down, err
		}
	}
	if u.Type == TypeNodeAddr && u.Version == 1 && Knows(cv, TypeNodeUpdate, 1) {
		return nodeAddrAsUpdate(b)
	}
	need := LowestLevel
	if l, ok := introduced[u]; ok {
		need = l
	}
	return nil, fmt.Errorf("%w: %s needs cluster version %d; the cluster is at %d until every manager runs a build of that level",
		ErrClusterVersion, u, need, cv)
}

// withoutCertRecord re-encodes a cluster.init, node.add or node.update of
// version 2 at version 1, without the certificate record that version 1
// does not carry: a cluster whose managers cannot all apply version 2
// records no serial and key hash (recovery then checks the certificate's
// expiry, as before). ok is false for any other command.
func withoutCertRecord(b []byte) ([]byte, bool, error) {
	c, err := Decode(b)
	if err != nil {
		return nil, false, err
	}
	switch c := c.(type) {
	case *ClusterInit:
		c.First.CertSerial, c.First.CertKeySHA256 = "", ""
	case *NodeAdd:
		c.Node.CertSerial, c.Node.CertKeySHA256 = "", ""
	case *NodeUpdate:
		c.CertSerial, c.CertKeySHA256 = "", ""
	default:
		return nil, false, nil
	}
	out, err := Encode(c)
	return out, true, err
}

// encodeJSONVersion encodes c's JSON payload under an older version
// number, for a command whose older version is its JSON form.
func encodeJSONVersion(c Command, version uint8) ([]byte, error) {
	header := envelopeHeader(c.Type(), version, 0)
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.Type(), err)
	}
	b := append(header, payload...)
	if len(b) > MaxCommandSize {
		return nil, fmt.Errorf("encode %s: %w (%d bytes, limit %d)", c.Type(), ErrCommandTooLarge, len(b), MaxCommandSize)
	}
	return b, nil
}
