package autolock

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/seal"
)

var update = flag.Bool("update", false, "rewrite testdata/envelopes.golden")

// fixedKEK is the KEK of the golden envelopes and the fuzz target.
var fixedKEK, _ = seal.ParseKey(bytes.Repeat([]byte{0x42}, seal.KeySize))

func TestWrapRoundTrip(t *testing.T) {
	kek := NewKey().KEK()
	tests := []struct {
		name    string
		purpose Purpose
		nodeID  string
		pt      []byte
	}{
		{"dek", PurposeDEK, "node-1", []byte("HFKEYS\x01" + strings.Repeat("k", 32) + "\x00")},
		{"node key", PurposeNodeKey, "abcdef0123456789", []byte("-----BEGIN EC PRIVATE KEY-----\n...")},
		{"empty plaintext", PurposeDEK, "n", nil},
		{"empty node ID", PurposeDEK, "", []byte("x")},
		{"large", PurposeNodeKey, "n", bytes.Repeat([]byte{7}, 1<<16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Wrap(kek, tt.purpose, tt.nodeID, tt.pt)
			if len(env) != len(tt.pt)+WrapOverhead {
				t.Fatalf("envelope: got %d bytes; want %d", len(env), len(tt.pt)+WrapOverhead)
			}
			if !IsWrapped(env) {
				t.Fatal("IsWrapped: got false")
			}
			if id, ok := KEKID(env); !ok || id != kek.ID() {
				t.Fatalf("KEKID: got %v, %v; want %v, true", id, ok, kek.ID())
			}
			if len(tt.pt) >= 8 && bytes.Contains(env, tt.pt[:8]) {
				t.Fatal("envelope contains plaintext")
			}
			got, err := Unwrap(kek, tt.purpose, tt.nodeID, env)
			if err != nil {
				t.Fatalf("Unwrap: %v", err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Fatal("Unwrap: got other plaintext")
			}
			if again := Wrap(kek, tt.purpose, tt.nodeID, tt.pt); bytes.Equal(again, env) {
				t.Fatal("two wraps of one plaintext are equal (nonce reuse?)")
			}
		})
	}
}

func TestUnwrapRejects(t *testing.T) {
	kek := NewKey().KEK()
	const node = "node-1"
	pt := []byte("the DEK file")
	env := Wrap(kek, PurposeDEK, node, pt)
	withVersion := func(v byte) []byte {
		b := bytes.Clone(env)
		b[len(wrapMagic)] = v
		return b
	}
	tests := []struct {
		name    string
		kek     seal.Key
		purpose Purpose
		node    string
		b       []byte
		want    error
	}{
		{"other KEK", NewKey().KEK(), PurposeDEK, node, env, ErrInvalidKey},
		{"other purpose", kek, PurposeNodeKey, node, env, ErrInvalidKey},
		{"other node", kek, PurposeDEK, "node-2", env, ErrInvalidKey},
		{"node ID prefix", kek, PurposeDEK, "node-", env, ErrInvalidKey},
		{"node ID longer", kek, PurposeDEK, "node-10", env, ErrInvalidKey},
		{"purpose moved into node ID", kek, "", "dek" + node, env, ErrInvalidKey},
		{"nil", kek, PurposeDEK, node, nil, ErrNotWrapped},
		{"empty", kek, PurposeDEK, node, []byte{}, ErrNotWrapped},
		{"plain key file", kek, PurposeDEK, node, []byte("HFKEYS\x01" + strings.Repeat("k", 33)), ErrNotWrapped},
		{"PEM", kek, PurposeNodeKey, node, []byte("-----BEGIN EC PRIVATE KEY-----"), ErrNotWrapped},
		{"magic lower case", kek, PurposeDEK, node, append([]byte("hfwrap"), env[6:]...), ErrNotWrapped},
		{"magic only", kek, PurposeDEK, node, []byte(wrapMagic), ErrMalformedEnvelope},
		{"header only", kek, PurposeDEK, node, env[:wrapHeaderSize], ErrMalformedEnvelope},
		{"version 0", kek, PurposeDEK, node, withVersion(0), ErrMalformedEnvelope},
		{"version 2", kek, PurposeDEK, node, withVersion(2), ErrMalformedEnvelope},
		{"no tag", kek, PurposeDEK, node, env[:WrapOverhead-1], ErrMalformedEnvelope},
		{"no plaintext byte", kek, PurposeDEK, node, env[:WrapOverhead], ErrInvalidKey},
		{"one byte short", kek, PurposeDEK, node, env[:len(env)-1], ErrInvalidKey},
		{"one byte more", kek, PurposeDEK, node, append(bytes.Clone(env), 0), ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unwrap(tt.kek, tt.purpose, tt.node, tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			if got != nil {
				t.Fatal("plaintext returned with an error")
			}
		})
	}
}

// TestUnwrapTampered flips each bit of an envelope and truncates it at
// every length: none opens.
func TestUnwrapTampered(t *testing.T) {
	kek := NewKey().KEK()
	env := Wrap(kek, PurposeNodeKey, "n1", []byte("private key"))
	for i := range env {
		for bit := range 8 {
			b := bytes.Clone(env)
			b[i] ^= 1 << bit
			if got, err := Unwrap(kek, PurposeNodeKey, "n1", b); err == nil || got != nil {
				t.Fatalf("byte %d bit %d flipped: opened", i, bit)
			}
		}
	}
	for n := range len(env) {
		if got, err := Unwrap(kek, PurposeNodeKey, "n1", env[:n]); err == nil || got != nil {
			t.Fatalf("truncated to %d bytes: opened", n)
		}
	}
}

func TestKEKID(t *testing.T) {
	old, cur := NewKey().KEK(), NewKey().KEK()
	env := Wrap(old, PurposeDEK, "n", []byte("dek"))
	if id, ok := KEKID(env); !ok || id != old.ID() || id == cur.ID() {
		t.Fatalf("KEKID: got %v, %v; want %v, true", id, ok, old.ID())
	}
	_, err := Unwrap(cur, PurposeDEK, "n", env)
	if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), old.ID().String()) {
		t.Fatalf("Unwrap under the current KEK: got %v; want ErrInvalidKey naming %v", err, old.ID())
	}
	for _, b := range [][]byte{nil, []byte("garbage"), env[:WrapOverhead-1], append([]byte(wrapMagic+"\x02"), env[7:]...)} {
		if _, ok := KEKID(b); ok {
			t.Fatalf("KEKID of %d bytes of non-envelope: got true", len(b))
		}
	}
}

// golden is one envelope pinned in testdata: the format must keep opening.
type golden struct {
	purpose Purpose
	node    string
	pt      []byte
	env     []byte
}

var goldenCases = []golden{
	{PurposeDEK, "node-1", []byte("HFKEYS\x01" + strings.Repeat("\x11", 32) + "\x00"), nil},
	{PurposeNodeKey, "node-1", []byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"), nil},
	{PurposeDEK, "", nil, nil},
}

const goldenPath = "testdata/envelopes.golden"

func readGolden(t testing.TB) []golden {
	t.Helper()
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []golden
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, " ")
		if len(f) != 4 {
			t.Fatalf("%s: bad line %q", goldenPath, line)
		}
		node, err1 := hex.DecodeString(f[1])
		pt, err2 := hex.DecodeString(f[2])
		env, err3 := hex.DecodeString(f[3])
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("%s: %v", goldenPath, err)
		}
		out = append(out, golden{Purpose(f[0]), string(node), pt, env})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWrapGolden(t *testing.T) {
	if *update {
		var buf bytes.Buffer
		buf.WriteString("# purpose hex(node_id) hex(plaintext) hex(envelope); KEK = 32 bytes of 0x42\n")
		for _, g := range goldenCases {
			env := Wrap(fixedKEK, g.purpose, g.node, g.pt)
			fmt.Fprintf(&buf, "%s %x %x %x\n", g.purpose, g.node, g.pt, env)
		}
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gs := readGolden(t)
	if len(gs) != len(goldenCases) {
		t.Fatalf("%s: got %d envelopes; want %d (run with -update)", goldenPath, len(gs), len(goldenCases))
	}
	for i, g := range gs {
		env := g.env
		if !bytes.HasPrefix(env, []byte("HFWRAP\x01")) {
			t.Fatalf("golden %d: header %q; want HFWRAP 0x01", i, env[:7])
		}
		if id := fixedKEK.ID(); !bytes.Equal(env[7:15], id[:]) {
			t.Fatalf("golden %d: KEK ID %x; want %x", i, env[7:15], id)
		}
		if len(env) != len(g.pt)+55 {
			t.Fatalf("golden %d: %d bytes; want %d", i, len(env), len(g.pt)+55)
		}
		// The associated data, built by hand from FORMAT.md.
		var ad []byte
		ad = append(ad, "holdfast/autolock wrap v1\x00\x01"...)
		ad = append(ad, 0, 0, 0, byte(len(g.purpose)))
		ad = append(ad, g.purpose...)
		ad = append(ad, 0, 0, 0, byte(len(g.node)))
		ad = append(ad, g.node...)
		ad = append(ad, env[7:15]...)
		pt, err := seal.Open(fixedKEK, env[15:], ad)
		if err != nil || !bytes.Equal(pt, g.pt) {
			t.Fatalf("golden %d: seal.Open with hand-built ad: %v", i, err)
		}
		pt, err = Unwrap(fixedKEK, g.purpose, g.node, env)
		if err != nil || !bytes.Equal(pt, g.pt) {
			t.Fatalf("golden %d: Unwrap: %v", i, err)
		}
	}
}
