package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/holdfast/holdfast/ca"
	"github.com/holdfast/holdfast/secrets"
)

// TestSecretCreateVersions: version 2 carries the data as raw bytes and
// round-trips every field; version 1 (JSON with base64), as older logs
// hold it, still decodes to the same command; a version 2 payload that
// smuggles data into its JSON, or whose length lies, is refused.
func TestSecretCreateVersions(t *testing.T) {
	data := bytes.Repeat([]byte{0, 0xff, 'x'}, 400)
	want := &SecretCreate{secrets.CreateCmd{ID: "s1", Name: "db", Data: data, Labels: map[string]string{"env": "prod"},
		Grants: []string{"w1", "w2"}, CreatedAt: time.Date(2026, 11, 24, 6, 0, 0, 123456789, time.UTC)}}

	v2, err := Encode(want)
	if err != nil {
		t.Fatal(err)
	}
	if v2[3] != 2 || !bytes.HasSuffix(v2, data) {
		t.Fatalf("version %d; data raw at the end: %v", v2[3], bytes.HasSuffix(v2, data))
	}
	got, err := Decode(v2)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("v2 decoded to %+v, %v", got, err)
	}

	payload, _ := json.Marshal(want)
	v1 := append([]byte{envelopeFormat, 0, byte(TypeSecretCreate), 1}, payload...)
	got, err = Decode(v1)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 decoded to %+v, %v", got, err)
	}
	if len(v1) < len(v2)+len(data)/4 {
		t.Fatalf("v1 is %d bytes and v2 %d: base64 should make v1 larger", len(v1), len(v2))
	}

	meta := []byte(`{"id":"s1","name":"db","data":"eA==","created_at":"2026-11-24T06:00:00Z"}`)
	smuggled := binary.AppendUvarint([]byte{envelopeFormat, 0, byte(TypeSecretCreate), 2}, uint64(len(meta)))
	smuggled = append(smuggled, meta...)
	for name, b := range map[string][]byte{
		"data in the JSON": smuggled,
		"length past end":  append([]byte{envelopeFormat, 0, byte(TypeSecretCreate), 2}, 0x7f, '{', '}'),
		"no length":        {envelopeFormat, 0, byte(TypeSecretCreate), 2},
		"version 3":        append([]byte{envelopeFormat, 0, byte(TypeSecretCreate), 3}, v2[4:]...),
		"version 0":        append([]byte{envelopeFormat, 0, byte(TypeSecretCreate), 0}, payload...),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrMalformedCommand) && !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("%s: %v, want a malformed or unsupported command", name, err)
		}
	}
	// Other commands accept only their current version.
	tr, _ := Encode(&TokenRotate{Role: ca.RoleManager, Token: "t"})
	tr[3] = 0
	if _, err := Decode(tr); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("token.rotate version 0: %v", err)
	}
}
