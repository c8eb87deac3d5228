package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkAEAD compares the two candidate AEADs, including construction
// (which Seal does per call) and a random nonce per message.
func BenchmarkAEAD(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	ciphers := []struct {
		name string
		make func() cipher.AEAD
	}{
		{"AES-256-GCM", func() cipher.AEAD {
			blk, err := aes.NewCipher(key)
			if err != nil {
				b.Fatal(err)
			}
			a, err := cipher.NewGCM(blk)
			if err != nil {
				b.Fatal(err)
			}
			return a
		}},
		{"XChaCha20-Poly1305", func() cipher.AEAD {
			a, err := chacha20poly1305.NewX(key)
			if err != nil {
				b.Fatal(err)
			}
			return a
		}},
	}
	for _, c := range ciphers {
		for _, size := range []int{1 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/%dKiB", c.name, size>>10), func(b *testing.B) {
				pt := make([]byte, size)
				ad := make([]byte, 64)
				b.SetBytes(int64(size))
				var out []byte
				for b.Loop() {
					a := c.make()
					nonce := make([]byte, a.NonceSize(), a.NonceSize()+size+a.Overhead())
					rand.Read(nonce)
					out = a.Seal(nonce, nonce, pt, ad)
				}
				_ = out
			})
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	k := NewKey()
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			pt := make([]byte, size)
			b.SetBytes(int64(size))
			for b.Loop() {
				_ = Seal(k, pt, []byte("ad"))
			}
		})
	}
}

func BenchmarkStream(b *testing.B) {
	k := NewKey()
	pt := make([]byte, 1<<20)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		w, err := NewWriter(k, io.Discard, []byte("ad"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(pt); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
