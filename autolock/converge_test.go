package autolock

import (
	"testing"

	"github.com/holdfast/holdfast/internal/seal"
)

func TestConverge(t *testing.T) {
	k1, k2 := NewKey(), NewKey()
	under := func(kek seal.Key) func(seal.Key) bool {
		return func(want seal.Key) bool { return want.Equal(kek) }
	}
	tests := []struct {
		name      string
		unlockKey string
		files     seal.Key // the KEK the files are wrapped under; zero: unwrapped
		rekey     bool
		kek       seal.Key
		err       bool
	}{
		{"autolock off, files unwrapped", "", seal.Key{}, false, seal.Key{}, false},
		{"autolock turned on", k1.String(), seal.Key{}, true, k1.KEK(), false},
		{"current key", k1.String(), k1.KEK(), false, k1.KEK(), false},
		{"key rotated", k2.String(), k1.KEK(), true, k2.KEK(), false},
		{"autolock turned off", "", k1.KEK(), true, seal.Key{}, false},
		{"malformed key in the state", "HFKEY-1-nonsense", k1.KEK(), true, seal.Key{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Converge(tt.unlockKey, under(tt.files))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v; want error %v", err, tt.err)
			}
			if got.Rekey != tt.rekey {
				t.Errorf("Rekey = %v; want %v", got.Rekey, tt.rekey)
			}
			if !got.KEK.Equal(tt.kek) {
				t.Errorf("KEK is not the one the unlock key gives")
			}
		})
	}
}
