package secrets

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// TestWriteFuzzSeeds (re)writes the seed corpora with -update-seeds and
// otherwise checks that they are present, so 'go test' runs them as tests.
func TestWriteFuzzSeeds(t *testing.T) {
	key := fuzzKey()
	keyFile, _ := key.MarshalBinary()
	named := &Key{Name: "ops", Entries: key.Entries}
	namedFile, _ := named.MarshalBinary()
	rotated := fuzzKey()
	rotated.Entries = append(rotated.Entries, KeyEntry{Version: 7})
	rotatedFile, _ := rotated.MarshalBinary()
	ct := func(p string) []byte { b, _ := Encrypt(key, []byte(p)); return b }
	tampered := ct("tamper me")
	tampered[len(tampered)-1] ^= 1
	seeds := map[string]map[string][]byte{
		"FuzzDecrypt": {
			"empty-plaintext": ct(""),
			"short":           ct("password: hunter2\n"),
			"multi-block":     ct("0123456789abcdef0123456789abcdef-tail"),
			"tampered":        tampered,
			"truncated":       ct("truncated")[:15],
			"header-only":     Header,
			"empty-input":     {},
			"plaintext":       []byte("plain: text\n"),
		},
		"FuzzParseKey": {
			"default":        keyFile,
			"named":          namedFile,
			"two-versions":   rotatedFile,
			"truncated":      keyFile[:40],
			"magic-only":     []byte(keyFileMagic),
			"unknown-even":   validEntry(preamble().u32(8, 1).raw([]byte{0}).u32(fieldEnd), 3).Bytes(),
			"unknown-odd":    validEntry(preamble().u32(9, 0).u32(fieldEnd), 0).Bytes(),
			"huge-field-len": preamble().u32(2, 0xffffffff).Bytes(),
		},
		"FuzzEncrypt": {
			"empty":           {},
			"looks-encrypted": append(append([]byte{}, Header...), "x"...),
		},
	}
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, b := range files {
			path := filepath.Join(dir, name)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if *updateSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("seed %s missing: run go test ./internal/secrets -run TestWriteFuzzSeeds -update-seeds", path)
			}
			if string(got) != want {
				t.Errorf("seed %s is stale: run go test ./internal/secrets -run TestWriteFuzzSeeds -update-seeds", path)
			}
		}
	}
}
