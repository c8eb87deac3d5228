package secrets

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"db-password", true},
		{"tls.key", true},
		{"A_b-c.9", true},
		{"0leading-digit", true},
		{"x.", true},
		{"x-", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{".hidden", false},
		{"-dash", false},
		{"_under", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"../etc", false},
		{"a b", false},
		{"a\x00b", false},
		{"a\n", false},
		{"café", false},
		{"ｆｕｌｌ", false},
		{"a:b", false},
		{"a*", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			err := ValidateName(tt.name)
			if got := err == nil; got != tt.ok {
				t.Fatalf("ValidateName(%q) = %v; want ok=%v", tt.name, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Errorf("got %v; want ErrInvalidName", err)
			}
		})
	}
}

func TestValidateData(t *testing.T) {
	tests := []struct {
		name string
		size int
		want error
	}{
		{"one byte", 1, nil},
		{"empty", 0, ErrEmpty},
		{"exactly 500 KiB", 500 * 1024, nil},
		{"500 KiB plus one", 500*1024 + 1, ErrTooLarge},
		{"one MiB", 1 << 20, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateData(make([]byte, tt.size))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ValidateData(%d bytes) = %v; want %v", tt.size, err, tt.want)
			}
		})
	}
	if err := ValidateData(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("ValidateData(nil) = %v; want ErrEmpty", err)
	}
}

func TestValidateLabels(t *testing.T) {
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name   string
		labels map[string]string
		ok     bool
	}{
		{"nil", nil, true},
		{"empty", map[string]string{}, true},
		{"simple", map[string]string{"env": "prod"}, true},
		{"empty value", map[string]string{"flag": ""}, true},
		{"key with slash and dots", map[string]string{"com.example/team-a_b": "x"}, true},
		{"unicode value", map[string]string{"owner": "Zoë 🔑"}, true},
		{"key 128", map[string]string{strings.Repeat("k", 128): "v"}, true},
		{"key 129", map[string]string{strings.Repeat("k", 129): "v"}, false},
		{"empty key", map[string]string{"": "v"}, false},
		{"key leading slash", map[string]string{"/a": "v"}, false},
		{"key leading dot", map[string]string{".a": "v"}, false},
		{"key with space", map[string]string{"a b": "v"}, false},
		{"key with equals", map[string]string{"a=b": "v"}, false},
		{"key unicode", map[string]string{"ключ": "v"}, false},
		{"value 1024", map[string]string{"k": strings.Repeat("v", 1024)}, true},
		{"value 1025", map[string]string{"k": strings.Repeat("v", 1025)}, false},
		{"value 1024 bytes multibyte", map[string]string{"k": strings.Repeat("é", 512)}, true},
		{"value 1026 bytes multibyte", map[string]string{"k": strings.Repeat("é", 513)}, false},
		{"value invalid utf8", map[string]string{"k": "a\xffb"}, false},
		{"value newline", map[string]string{"k": "a\nb"}, false},
		{"value NUL", map[string]string{"k": "a\x00"}, false},
		{"value DEL", map[string]string{"k": "a\x7f"}, false},
		{"value C1", map[string]string{"k": "a\u0085"}, false},
		{"64 labels", many(64), true},
		{"65 labels", many(65), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateLabels(tt.labels)
			if got := err == nil; got != tt.ok {
				t.Fatalf("ValidateLabels = %v; want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidLabel) {
				t.Errorf("got %v; want ErrInvalidLabel", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	data := []byte("hello")
	labels := map[string]string{"a": "1"}
	grants := []string{"n2", "n1", "n2"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	s, err := New("id1", "greeting", data, labels, grants, at)
	if err != nil {
		t.Fatal(err)
	}
	if s.Digest != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("got digest %s; want sha256 of hello", s.Digest)
	}
	if s.Size != 5 {
		t.Errorf("got size %d; want 5", s.Size)
	}
	if got := fmt.Sprint(s.Grants); got != "[n1 n2]" {
		t.Errorf("got grants %s; want [n1 n2]", got)
	}
	if !s.CreatedAt.Equal(at) || s.CreatedAt.Location() != time.UTC || s.UpdatedAt != s.CreatedAt {
		t.Errorf("got created %v updated %v; want %v in UTC", s.CreatedAt, s.UpdatedAt, at)
	}
	// New copies its arguments.
	data[0], labels["a"], grants[0] = 'J', "2", "zz"
	if string(s.Data) != "hello" || s.Labels["a"] != "1" || s.Grants[1] != "n2" {
		t.Errorf("secret shares memory with New's arguments: %#v", s)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate of a new secret: %v", err)
	}

	bad := []struct {
		name string
		mk   func() error
		want error
	}{
		{"bad id", func() error { _, err := New("", "n", data, nil, nil, at); return err }, ErrInvalidID},
		{"bad name", func() error { _, err := New("i", "-n", data, nil, nil, at); return err }, ErrInvalidName},
		{"empty", func() error { _, err := New("i", "n", nil, nil, nil, at); return err }, ErrEmpty},
		{"too large", func() error { _, err := New("i", "n", make([]byte, MaxSize+1), nil, nil, at); return err }, ErrTooLarge},
		{"bad label", func() error { _, err := New("i", "n", data, map[string]string{"": ""}, nil, at); return err }, ErrInvalidLabel},
		{"bad node ID", func() error { _, err := New("i", "n", data, nil, []string{"a b"}, at); return err }, ErrUnknownNode},
		{"time out of range", func() error {
			_, err := New("i", "n", data, nil, nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
			return err
		}, ErrMalformed},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.mk(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
		})
	}
}
