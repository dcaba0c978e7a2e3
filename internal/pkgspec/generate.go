package pkgspec

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Generator produces generated configuration values.
type Generator interface {
	// Generate returns a new value for the parameter param as spec describes.
	Generate(param string, spec Generate) (string, error)
}

// RandomGenerator returns a Generator that draws from crypto/rand.
func RandomGenerator() Generator { return randomGenerator{} }

type randomGenerator struct{}

func (randomGenerator) Generate(_ string, spec Generate) (string, error) {
	alpha := spec.Charset.alphabet()
	out := make([]byte, spec.Length)
	buf := make([]byte, 1)
	// Rejection sampling keeps every character equally likely.
	limit := 256 - 256%len(alpha)
	for i := 0; i < len(out); {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("reading random bytes: %w", err)
		}
		if int(buf[0]) >= limit {
			continue
		}
		out[i] = alpha[int(buf[0])%len(alpha)]
		i++
	}
	return string(out), nil
}

// SeededGenerator returns a Generator whose values are derived from a secret seed
// and a scope (such as "namespace/app") with HMAC-SHA256: the same seed, scope and
// parameter always give the same value, so values stay stable across runs without
// being stored, and differ between apps.
func SeededGenerator(seed []byte, scope string) Generator {
	return seededGenerator{seed: seed, scope: scope}
}

type seededGenerator struct {
	seed  []byte
	scope string
}

func (g seededGenerator) Generate(param string, spec Generate) (string, error) {
	if len(g.seed) < 16 {
		return "", fmt.Errorf("the seed for generated values is too short (%d bytes, need at least 16)", len(g.seed))
	}
	alpha := spec.Charset.alphabet()
	limit := uint64(1<<32) - uint64(1<<32)%uint64(len(alpha))
	out := make([]byte, 0, spec.Length)
	for block := uint32(0); len(out) < spec.Length; block++ {
		m := hmac.New(sha256.New, g.seed)
		fmt.Fprintf(m, "%s\x00%s\x00%d", g.scope, param, block)
		sum := m.Sum(nil)
		for i := 0; i+4 <= len(sum) && len(out) < spec.Length; i += 4 {
			n := binary.BigEndian.Uint32(sum[i:])
			if uint64(n) >= limit {
				continue
			}
			out = append(out, alpha[n%uint32(len(alpha))])
		}
	}
	return string(out), nil
}
