package fsm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/holdfast/holdfast/internal/strictjson"
)

// Command envelope: one format byte, the command type (uint16, big endian),
// the command's version (one byte), then the payload: JSON, or for a
// command with a binaryPayload encoding at its current version, that.
//
//	+--------+-----------+---------+----------------+
//	| 0x01   | type (2)  | ver (1) | payload        |
//	+--------+-----------+---------+----------------+
const (
	envelopeFormat = 0x01
	headerLen      = 4
	// MaxCommandSize bounds a command's encoded size. Secrets are at most
	// 500 KiB; base64 and JSON framing stay well under this.
	MaxCommandSize = 1 << 20
)

// Type names a command.
type Type uint16

// The command types. Values are part of the on-disk log format: never reuse
// or renumber one.
const (
	TypeClusterInit    Type = 1
	TypeNodeAdd        Type = 2
	TypeNodeSetRole    Type = 3
	TypeNodeRemove     Type = 4
	TypeTokenRotate    Type = 5
	TypeSettingsUpdate Type = 6
	TypeNodeUpdate     Type = 7
	TypeLeaderReady    Type = 8
	TypeSecretCreate   Type = 9
	TypeSecretRemove   Type = 10
	TypeSecretLabels   Type = 11
	TypeSecretGrant    Type = 12
	TypeSecretRevoke   Type = 13
	TypeAutolockSet    Type = 14
	// 15–19: data-plane keys.
	TypeKeysRotate Type = 15
)

func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

var typeNames = map[Type]string{
	TypeClusterInit:    "cluster.init",
	TypeNodeAdd:        "node.add",
	TypeNodeSetRole:    "node.set_role",
	TypeNodeRemove:     "node.remove",
	TypeTokenRotate:    "token.rotate",
	TypeSettingsUpdate: "settings.update",
	TypeNodeUpdate:     "node.update",
	TypeLeaderReady:    "leader.ready",
	TypeSecretCreate:   "secret.create",
	TypeSecretRemove:   "secret.remove",
	TypeSecretLabels:   "secret.labels",
	TypeSecretGrant:    "secret.grant",
	TypeSecretRevoke:   "secret.revoke",
	TypeAutolockSet:    "autolock.set",
	TypeKeysRotate:     "keys.rotate",
	TypeCARotateStart:  "ca.rotate_start",
	TypeCARotateNode:   "ca.rotate_node",
	TypeCARotateFinish: "ca.rotate_finish",
	TypeBatch:          "batch",
	TypeNodeLevel:      "node.level",
	TypeNodeAddr:       "node.addr",
}

// Errors from decoding a command.
var (
	ErrMalformedCommand   = errors.New("malformed command")
	ErrUnknownCommand     = errors.New("unknown command type")
	ErrUnsupportedVersion = errors.New("unsupported command version")
	ErrCommandTooLarge    = errors.New("command too large")
)

// Command is one state change. Each concrete command knows its type and
// version; the payload is the struct itself as JSON.
type Command interface {
	Type() Type
	Version() uint8
}

// binaryPayload is a command whose current version has its own payload
// encoding (a bulk field as raw bytes rather than base64 in JSON); its
// older versions are JSON.
type binaryPayload interface {
	appendPayload(b []byte) ([]byte, error)
	decodePayload(p []byte) error
}

// registry maps a type to its current version and a constructor of an empty
// payload. Only the current version decodes, unless oldestVersion names an
// older one that still does.
var registry = map[Type]struct {
	version uint8
	new     func() Command
}{
	TypeClusterInit:    {2, func() Command { return new(ClusterInit) }},
	TypeNodeAdd:        {2, func() Command { return new(NodeAdd) }},
	TypeNodeSetRole:    {1, func() Command { return new(NodeSetRole) }},
	TypeNodeRemove:     {1, func() Command { return new(NodeRemove) }},
	TypeTokenRotate:    {1, func() Command { return new(TokenRotate) }},
	TypeSettingsUpdate: {1, func() Command { return new(SettingsUpdate) }},
	TypeNodeUpdate:     {2, func() Command { return new(NodeUpdate) }},
	TypeLeaderReady:    {1, func() Command { return new(LeaderReady) }},
	TypeSecretCreate:   {2, func() Command { return new(SecretCreate) }},
	TypeSecretRemove:   {1, func() Command { return new(SecretRemove) }},
	TypeSecretLabels:   {1, func() Command { return new(SecretLabels) }},
	TypeSecretGrant:    {1, func() Command { return new(SecretGrant) }},
	TypeSecretRevoke:   {1, func() Command { return new(SecretRevoke) }},
	TypeAutolockSet:    {1, func() Command { return new(AutolockSet) }},
	TypeKeysRotate:     {1, func() Command { return new(KeysRotate) }},
	TypeCARotateStart:  {1, func() Command { return new(CARotateStart) }},
	TypeCARotateNode:   {1, func() Command { return new(CARotateNode) }},
	TypeCARotateFinish: {1, func() Command { return new(CARotateFinish) }},
	TypeBatch:          {1, func() Command { return new(Batch) }},
	TypeNodeLevel:      {1, func() Command { return new(NodeLevel) }},
	TypeNodeAddr:       {1, func() Command { return new(NodeAddr) }},
}

// oldestVersion is, for a type whose older versions still decode, the
// oldest that does: the log may hold entries written before an upgrade.
var oldestVersion = map[Type]uint8{
	TypeSecretCreate: 1, // version 1: data in base64 in the JSON
	// Version 1: node records without the certificate's serial and key
	// hash; version 2 adds them.
	TypeClusterInit: 1,
	TypeNodeAdd:     1,
	TypeNodeUpdate:  1,
}

// Encode turns a command into log data.
func Encode(c Command) ([]byte, error) {
	header := envelopeHeader(c.Type(), c.Version(), 0)
	var b []byte
	if bp, ok := c.(binaryPayload); ok {
		var err error
		if b, err = bp.appendPayload(header); err != nil {
			return nil, fmt.Errorf("encode %s: %w", c.Type(), err)
		}
	} else {
		payload, err := json.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", c.Type(), err)
		}
		b = append(header, payload...)
	}
	if len(b) > MaxCommandSize {
		return nil, fmt.Errorf("encode %s: %w (%d bytes, limit %d)", c.Type(), ErrCommandTooLarge, len(b), MaxCommandSize)
	}
	return b, nil
}

// envelopeHeader returns a command's header, in a slice with room for
// capacity bytes in all.
func envelopeHeader(t Type, version uint8, capacity int) []byte {
	h := make([]byte, headerLen, max(headerLen, capacity))
	h[0], h[3] = envelopeFormat, version
	binary.BigEndian.PutUint16(h[1:3], uint16(t))
	return h
}

// Decode parses log data into a command. It never panics: anything it cannot
// read is an error wrapping one of the sentinels above.
func Decode(b []byte) (Command, error) {
	if len(b) > MaxCommandSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrCommandTooLarge, len(b), MaxCommandSize)
	}
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrMalformedCommand, len(b))
	}
	if b[0] != envelopeFormat {
		return nil, fmt.Errorf("%w: envelope format %d", ErrMalformedCommand, b[0])
	}
	t := Type(binary.BigEndian.Uint16(b[1:3]))
	reg, ok := registry[t]
	if !ok {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCommand, uint16(t))
	}
	oldest, ok := oldestVersion[t]
	if !ok {
		oldest = reg.version
	}
	if b[3] < oldest || b[3] > reg.version {
		return nil, fmt.Errorf("%w: %s version %d (this build knows versions %d to %d)", ErrUnsupportedVersion, t, b[3], oldest, reg.version)
	}
	c := reg.new()
	if bp, ok := c.(binaryPayload); ok && b[3] == reg.version {
		if err := bp.decodePayload(b[headerLen:]); err != nil {
			return nil, fmt.Errorf("%w: %s payload: %v", ErrMalformedCommand, t, err)
		}
		return c, nil
	}
	if err := strictjson.Unmarshal(b[headerLen:], c); err != nil {
		return nil, fmt.Errorf("%w: %s payload: %v", ErrMalformedCommand, t, err)
	}
	return c, nil
}
