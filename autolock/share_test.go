package autolock

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func mustSplit(t testing.TB, k Key, n, threshold int) []Share {
	t.Helper()
	shares, err := Split(k, n, threshold)
	if err != nil {
		t.Fatal(err)
	}
	return shares
}

func TestSplitParameters(t *testing.T) {
	k := NewKey()
	tests := []struct {
		n, threshold int
		ok           bool
	}{
		{2, 2, true}, {5, 3, true}, {255, 255, true}, {255, 2, true},
		{1, 1, false}, {3, 1, false}, {5, 0, false}, {5, -1, false},
		{2, 3, false}, {256, 2, false}, {256, 256, false}, {0, 0, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-of-%d", tt.threshold, tt.n), func(t *testing.T) {
			shares, err := Split(k, tt.n, tt.threshold)
			if tt.ok {
				if err != nil || len(shares) != tt.n {
					t.Fatalf("got %d shares, %v; want %d", len(shares), err, tt.n)
				}
				return
			}
			if !errors.Is(err, ErrSplitParameters) || shares != nil {
				t.Fatalf("got %d shares, %v; want ErrSplitParameters", len(shares), err)
			}
		})
	}
	if _, err := Split(Key{}, 3, 2); err == nil {
		t.Fatal("Split of the zero Key: got no error")
	}
}

func TestShareTextRoundTrip(t *testing.T) {
	k := NewKey()
	shares := mustSplit(t, k, 5, 3)
	for _, sh := range shares {
		s := sh.String()
		if !strings.HasPrefix(s, SharePrefix) || len(s) != len(SharePrefix)+68 {
			t.Fatalf("got %d-character text; want %s and 68 characters", len(s), SharePrefix)
		}
		for _, in := range []string{s, "  " + s + "\n", strings.ToUpper(s)} {
			got, err := ParseShare(in)
			if err != nil {
				t.Fatalf("ParseShare: %v", err)
			}
			if got != sh || got.String() != s {
				t.Fatalf("share %d: parse then String is not the share", sh.Index())
			}
		}
	}
	parsed := make([]Share, 0, 3)
	for _, sh := range shares[1:4] {
		p, err := ParseShare(sh.String())
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, p)
	}
	if got, err := Combine(parsed); err != nil || !got.Equal(k) {
		t.Fatalf("Combine of parsed shares: %v", err)
	}
}

// TestShareGolden pins the share text layout, built by hand.
func TestShareGolden(t *testing.T) {
	k := fixedKey(t)
	shares, err := split(k, 3, 2, &coeffReader{bytes.Repeat([]byte{0x03}, KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprint(k.b[:])
	for i, sh := range shares {
		body := []byte{2, byte(i + 1)}
		body = append(body, fp[:]...)
		for j := range KeySize {
			body = append(body, byte(j)^gfMul(3, byte(i+1))) // p(x) = key[j] + 3x
		}
		sum := shareChecksum(body)
		want := SharePrefix + strings.ToLower(strings.TrimRight(b32std(append(body, sum[:]...)), "="))
		if got := sh.String(); got != want {
			t.Fatalf("share %d: got %s; want %s", i+1, got, want)
		}
	}
	if got := shares[0].String(); got != "HFSHR-1-aiaxyc3hzqbqeaiaa4dakbalbieqqdyobugbgeqrcalrmfiudmnbsga7dyorzoimkl7a" {
		t.Fatalf("share 1: got %s; want the pinned text", got)
	}
}

func TestParseShareTypo(t *testing.T) {
	s := mustSplit(t, NewKey(), 3, 2)[1].String()
	for i := len(SharePrefix); i < len(s); i++ {
		for _, c := range []byte(alphabet) {
			if c == s[i] {
				continue
			}
			typo := s[:i] + string(c) + s[i+1:]
			_, err := ParseShare(typo)
			if !errors.Is(err, ErrMistyped) {
				t.Fatalf("character %d changed: got %v; want ErrMistyped", i, err)
			}
			if strings.Contains(err.Error(), typo[len(SharePrefix):]) {
				t.Fatalf("error contains the input: %v", err)
			}
		}
	}
}

// validShareText encodes a share body with a correct checksum, to reach
// the checks that come after it.
func validShareText(threshold, index byte) string {
	body := make([]byte, shareSize)
	body[0], body[1] = threshold, index
	sum := shareChecksum(body)
	return encodeText(SharePrefix, append(body, sum[:]...))
}

func TestParseShareMalformed(t *testing.T) {
	s := mustSplit(t, NewKey(), 3, 2)[0].String()
	body := s[len(SharePrefix):]
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrMalformedShare},
		{"a key", NewKey().String(), ErrMalformedShare},
		{"no prefix", body, ErrMalformedShare},
		{"other version", "HFSHR-2-" + body, ErrMalformedShare},
		{"short", s[:len(s)-1], ErrMalformedShare},
		{"long", s + "a", ErrMalformedShare},
		{"bad character", s[:30] + "1" + s[31:], ErrMalformedShare},
		{"threshold 1", validShareText(1, 1), ErrMalformedShare},
		{"threshold 0", validShareText(0, 1), ErrMalformedShare},
		{"index 0", validShareText(2, 0), ErrMalformedShare},
		{"valid", validShareText(2, 1), nil},
		{"valid 255", validShareText(255, 255), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh, err := ParseShare(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			if err == nil {
				return
			}
			if !sh.IsZero() {
				t.Fatal("a share came back with the error")
			}
			if in := strings.TrimSpace(tt.in); len(in) > len(SharePrefix) && strings.Contains(err.Error(), in) {
				t.Fatalf("error contains the input: %v", err)
			}
		})
	}
}

func TestShareRedacted(t *testing.T) {
	sh := mustSplit(t, NewKey(), 3, 2)[0]
	secret := sh.String()[len(SharePrefix):]
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("share", "share", sh)
	outs := map[string]string{
		"%v":       fmt.Sprintf("%v", sh),
		"%s":       fmt.Sprintf("%s", sh),
		"%#v":      fmt.Sprintf("%#v", sh),
		"%v slice": fmt.Sprintf("%v", []Share{sh}),
		"GoString": sh.GoString(),
		"slog":     logged.String(),
	}
	for name, out := range outs {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the share: %s", name, out)
		}
	}
	if !strings.Contains(logged.String(), "share.index=1") {
		t.Errorf("slog: got %q; want the index", logged.String())
	}
}

func TestCombineErrors(t *testing.T) {
	k := NewKey()
	a := mustSplit(t, k, 5, 3)
	b := mustSplit(t, k, 5, 3)            // another split of the same key
	other := mustSplit(t, NewKey(), 5, 3) // another key
	t2 := mustSplit(t, k, 5, 2)           // another threshold
	conflict := a[1]
	conflict.y[0] ^= 1
	tests := []struct {
		name   string
		shares []Share
		want   error
	}{
		{"none", nil, ErrNotEnoughShares},
		{"one", a[:1], ErrNotEnoughShares},
		{"two of 3", a[:2], ErrNotEnoughShares},
		{"two and duplicates", []Share{a[0], a[1], a[0], a[1]}, ErrNotEnoughShares},
		{"another key", []Share{a[0], a[1], other[2]}, ErrShareMismatch},
		{"another threshold", []Share{a[0], a[1], t2[2]}, ErrShareMismatch},
		{"conflicting index", []Share{a[0], a[1], conflict}, ErrShareMismatch},
		{"two splits of one key", []Share{a[0], a[1], b[2]}, ErrShareMismatch},
		{"zero share", []Share{a[0], {}, a[1]}, ErrMalformedShare},
		{"exactly enough", a[2:5], nil},
		{"more than enough", a, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Combine(tt.shares)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			if err == nil && !got.Equal(k) {
				t.Fatal("combined to another key")
			}
			if err != nil && !got.IsZero() {
				t.Fatal("a key came back with the error")
			}
		})
	}
}

func TestShareSet(t *testing.T) {
	k := NewKey()
	a := mustSplit(t, k, 5, 3)
	b := mustSplit(t, k, 5, 3)
	other := mustSplit(t, NewKey(), 5, 3)
	t2 := mustSplit(t, k, 5, 2)

	type step struct {
		sh         Share
		have, need int
		err        error
		done       bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{
			{a[0], 1, 3, nil, false},
			{a[1], 2, 3, nil, false},
			{a[2], 3, 3, nil, true},
		}},
		{"duplicates ignored", []step{
			{a[4], 1, 3, nil, false},
			{a[4], 1, 3, nil, false},
			{a[0], 2, 3, nil, false},
			{a[0], 2, 3, nil, false},
			{a[3], 3, 3, nil, true},
			{a[3], 3, 3, nil, true},
		}},
		{"another key not added", []step{
			{a[0], 1, 3, nil, false},
			{other[1], 1, 3, ErrShareMismatch, false},
			{a[1], 2, 3, nil, false},
			{other[2], 2, 3, ErrShareMismatch, false},
			{a[2], 3, 3, nil, true},
		}},
		{"another threshold not added", []step{
			{a[0], 1, 3, nil, false},
			{t2[1], 1, 3, ErrShareMismatch, false},
			{a[1], 2, 3, nil, false},
		}},
		{"two splits detected at completion", []step{
			{a[0], 1, 3, nil, false},
			{b[1], 2, 3, nil, false},
			{a[2], 2, 3, ErrShareMismatch, false},
		}},
		{"extra share after completion is checked", []step{
			{a[0], 1, 3, nil, false},
			{a[1], 2, 3, nil, false},
			{a[2], 3, 3, nil, true},
			{other[3], 3, 3, ErrShareMismatch, true},
			{a[3], 3, 3, nil, true},
		}},
		{"zero share", []step{
			{Share{}, 0, 0, ErrMalformedShare, false},
			{a[0], 1, 3, nil, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s ShareSet
			if _, ok := s.Key(); ok {
				t.Fatal("empty set has a key")
			}
			for i, st := range tt.steps {
				have, need, err := s.Add(st.sh)
				if have != st.have || need != st.need || !errors.Is(err, st.err) {
					t.Fatalf("step %d: got %d/%d, %v; want %d/%d, %v", i, have, need, err, st.have, st.need, st.err)
				}
				if h, n := s.Progress(); h != st.have || (n != st.need && st.have > 0) {
					t.Fatalf("step %d: Progress %d/%d; want %d/%d", i, h, n, st.have, st.need)
				}
				got, ok := s.Key()
				if ok != st.done {
					t.Fatalf("step %d: Key ok = %v; want %v", i, ok, st.done)
				}
				if ok && !got.Equal(k) {
					t.Fatalf("step %d: recovered another key", i)
				}
			}
			s.Reset()
			if _, ok := s.Key(); ok {
				t.Fatal("Key after Reset")
			}
			if h, n := s.Progress(); h != 0 || n != 0 {
				t.Fatalf("Progress after Reset: %d/%d; want 0/0", h, n)
			}
			// After Reset a share of any key starts a new set.
			if have, need, err := s.Add(other[0]); have != 1 || need != 3 || err != nil {
				t.Fatalf("Add after Reset: %d/%d, %v", have, need, err)
			}
		})
	}
}

func TestShareSetConcurrent(t *testing.T) {
	k := NewKey()
	shares := mustSplit(t, k, 20, 10)
	var s ShareSet
	var wg sync.WaitGroup
	for _, sh := range shares {
		wg.Go(func() {
			if _, _, err := s.Add(sh); err != nil {
				t.Error(err)
			}
			s.Key()
			s.Progress()
		})
	}
	wg.Wait()
	got, ok := s.Key()
	if !ok || !got.Equal(k) {
		t.Fatal("concurrent adds did not recover the key")
	}
}
