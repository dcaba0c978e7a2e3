package secrets

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzKey is a fixed key, so the seed corpus in testdata/fuzz holds real
// ciphertexts under it (made by `go test -run TestWriteFuzzSeeds -update-seeds`).
func fuzzKey() *Key {
	var e KeyEntry
	for i := range e.AESKey {
		e.AESKey[i] = byte(i)
	}
	for i := range e.HMACKey {
		e.HMACKey[i] = byte(AESKeySize + i)
	}
	return &Key{Entries: []KeyEntry{e}}
}

// FuzzDecrypt feeds arbitrary bytes to the decoder: it must never panic, never
// return plaintext with an error, and whatever it accepts must be exactly what
// Encrypt produces for that plaintext (no malleability).
func FuzzDecrypt(f *testing.F) {
	key := fuzzKey()
	for _, p := range []string{"", "a", "password: hunter2\n"} {
		ct, _ := Encrypt(key, []byte(p))
		f.Add(ct)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		plain, err := Decrypt(key, in)
		if err != nil {
			if plain != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		again, err := Encrypt(key, plain)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, in) {
			t.Fatalf("Decrypt accepted %x, which Encrypt would never produce", in)
		}
	})
}

// FuzzEncrypt checks the round trip for arbitrary plaintexts.
func FuzzEncrypt(f *testing.F) {
	key := fuzzKey()
	f.Add([]byte(""))
	f.Add(append(bytes.Clone(Header), 1, 2, 3))
	f.Fuzz(func(t *testing.T, plain []byte) {
		ct, err := Encrypt(key, plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decrypt(key, ct)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatal("round trip changed the plaintext")
		}
	})
}

// FuzzParseKey feeds arbitrary bytes to the key file parser: it must never panic,
// and any key it accepts must survive a marshal/parse round trip unchanged.
func FuzzParseKey(f *testing.F) {
	b, _ := fuzzKey().MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := ParseKey(in)
		if err != nil {
			if k != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		out, err := k.MarshalBinary()
		if err != nil {
			t.Fatalf("a parsed key does not marshal: %v", err)
		}
		back, err := ParseKey(out)
		if err != nil {
			t.Fatalf("a marshalled key does not parse: %v", err)
		}
		if back.Name != k.Name {
			t.Fatalf("name %q became %q", k.Name, back.Name)
		}
		if diff := cmp.Diff(k.newestFirst(), back.Entries); diff != "" {
			t.Fatalf("entries changed (-parsed +reparsed):\n%s", diff)
		}
	})
}
