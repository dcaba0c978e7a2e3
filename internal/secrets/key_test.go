package secrets

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeyFileInterop(t *testing.T) {
	gc := gitCryptPath(t)
	tests := map[string]struct{ initArgs, exportArgs []string }{
		"default key": {[]string{"init"}, []string{"export-key"}},
		"named key":   {[]string{"init", "-k", "ops_team-2"}, []string{"export-key", "-k", "ops_team-2"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := newRepo(t)
			run(t, dir, gc, tc.initArgs...)
			theirsPath := filepath.Join(t.TempDir(), "theirs.key")
			run(t, dir, gc, append(tc.exportArgs, theirsPath)...)
			theirs, err := os.ReadFile(theirsPath)
			if err != nil {
				t.Fatal(err)
			}
			key, err := ParseKey(theirs)
			if err != nil {
				t.Fatalf("berth cannot read git-crypt's key file: %v", err)
			}
			ours, err := key.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, theirs) {
				t.Fatalf("berth re-encodes git-crypt's key file differently:\nberth     %x\ngit-crypt %x", ours, theirs)
			}
			// The key git-crypt generated encrypts the same way in both tools.
			ct, _ := Encrypt(key, []byte("shared"))
			crypted := gitCryptRepo(t, &Key{Entries: key.Entries})
			theirCT, err := gitCryptFilter(t, crypted, "clean", []byte("shared"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ct, theirCT) {
				t.Fatal("berth and git-crypt encrypt differently with git-crypt's key")
			}
		})
	}
}

func TestGitCryptReadsBerthKeyFile(t *testing.T) {
	gc := gitCryptPath(t)
	key, _ := GenerateKey()
	ours, _ := key.MarshalBinary()
	// git-crypt re-encodes the key it loaded: equal bytes mean it read every field.
	dir := gitCryptRepo(t, key)
	out := filepath.Join(t.TempDir(), "reexported.key")
	run(t, dir, gc, "export-key", out)
	theirs, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, theirs) {
		t.Fatalf("git-crypt re-exports berth's key file differently:\nberth     %x\ngit-crypt %x", ours, theirs)
	}
}

// keyBytes builds a key file from raw parts so malformed ones can be expressed.
type keyBytes struct{ bytes.Buffer }

func (k *keyBytes) u32(vs ...uint32) *keyBytes {
	for _, v := range vs {
		binary.Write(&k.Buffer, binary.BigEndian, v)
	}
	return k
}
func (k *keyBytes) raw(b []byte) *keyBytes { k.Write(b); return k }

func validEntry(k *keyBytes, version uint32) *keyBytes {
	return k.u32(fieldVersion, 4, version).
		u32(fieldAESKey, AESKeySize).raw(bytes.Repeat([]byte{1}, AESKeySize)).
		u32(fieldHMACKey, HMACKeySize).raw(bytes.Repeat([]byte{2}, HMACKeySize)).
		u32(fieldEnd)
}

func preamble() *keyBytes {
	k := &keyBytes{}
	k.raw([]byte(keyFileMagic)).u32(keyFileVersion)
	return k
}

func TestParseKey(t *testing.T) {
	tests := map[string]struct {
		in       []byte
		want     error // nil: parses
		entries  int
		wantName string
	}{
		"minimal":                 {validEntry(preamble().u32(fieldEnd), 0).Bytes(), nil, 1, ""},
		"two versions":            {validEntry(validEntry(preamble().u32(fieldEnd), 1), 0).Bytes(), nil, 2, ""},
		"named":                   {validEntry(preamble().u32(fieldKeyName, 3).raw([]byte("ops")).u32(fieldEnd), 0).Bytes(), nil, 1, "ops"},
		"unknown even header":     {validEntry(preamble().u32(4, 2).raw([]byte("xx")).u32(fieldEnd), 0).Bytes(), nil, 1, ""},
		"unknown even entry":      {preamble().u32(fieldEnd).u32(6, 1).raw([]byte{9}).u32(fieldVersion, 4, 0, fieldAESKey, 32).raw(make([]byte, 32)).u32(fieldHMACKey, 64).raw(make([]byte, 64)).u32(fieldEnd).Bytes(), nil, 1, ""},
		"unknown odd header":      {validEntry(preamble().u32(7, 0).u32(fieldEnd), 0).Bytes(), ErrIncompatibleKey, 0, ""},
		"unknown odd entry":       {preamble().u32(fieldEnd).u32(7, 0).Bytes(), ErrIncompatibleKey, 0, ""},
		"wrong magic":             {[]byte("\x00GITCRYPTKEZ\x00\x00\x00\x02"), ErrMalformedKey, 0, ""},
		"legacy format 1":         {(&keyBytes{}).raw([]byte(keyFileMagic)).u32(1).Bytes(), ErrIncompatibleKey, 0, ""},
		"empty":                   {nil, ErrMalformedKey, 0, ""},
		"no entries":              {preamble().u32(fieldEnd).Bytes(), ErrMalformedKey, 0, ""},
		"truncated header":        {preamble().u32(fieldKeyName).Bytes(), ErrMalformedKey, 0, ""},
		"truncated entry":         {validEntry(preamble().u32(fieldEnd), 0).Bytes()[:60], ErrMalformedKey, 0, ""},
		"short aes key":           {preamble().u32(fieldEnd).u32(fieldAESKey, 16).raw(make([]byte, 16)).Bytes(), ErrMalformedKey, 0, ""},
		"version field too long":  {preamble().u32(fieldEnd).u32(fieldVersion, 8, 0, 0).Bytes(), ErrMalformedKey, 0, ""},
		"entry lacks hmac key":    {preamble().u32(fieldEnd).u32(fieldVersion, 4, 0, fieldAESKey, 32).raw(make([]byte, 32)).u32(fieldEnd).Bytes(), ErrMalformedKey, 0, ""},
		"duplicate version":       {validEntry(validEntry(preamble().u32(fieldEnd), 0), 0).Bytes(), ErrMalformedKey, 0, ""},
		"name 'default'":          {validEntry(preamble().u32(fieldKeyName, 7).raw([]byte("default")).u32(fieldEnd), 0).Bytes(), ErrMalformedKey, 0, ""},
		"name with slash":         {validEntry(preamble().u32(fieldKeyName, 3).raw([]byte("a/b")).u32(fieldEnd), 0).Bytes(), ErrMalformedKey, 0, ""},
		"name too long":           {validEntry(preamble().u32(fieldKeyName, 200).raw(bytes.Repeat([]byte("a"), 200)).u32(fieldEnd), 0).Bytes(), ErrMalformedKey, 0, ""},
		"huge even field":         {preamble().u32(2, 1<<21).Bytes(), ErrMalformedKey, 0, ""},
		"field longer than input": {preamble().u32(2, 1000).raw([]byte("x")).Bytes(), ErrMalformedKey, 0, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			k, err := ParseKey(tc.in)
			if !isErr(err, tc.want) {
				t.Fatalf("ParseKey error = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if diff := cmp.Diff(tc.entries, len(k.Entries)); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if k.Name != tc.wantName {
				t.Errorf("name = %q, want %q", k.Name, tc.wantName)
			}
		})
	}
}

func TestKeyRoundTrip(t *testing.T) {
	key, _ := GenerateKey()
	key.Name = "team"
	if err := key.Rotate(); err != nil {
		t.Fatal(err)
	}
	b, err := key.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	// Marshal writes newest first; compare as sets by sorting both.
	if diff := cmp.Diff(key.newestFirst(), back.Entries); diff != "" {
		t.Fatalf("entries changed in a round trip (-want +got):\n%s", diff)
	}
	if back.ID() != key.ID() {
		t.Fatal("the key ID changed in a round trip")
	}
	other, _ := GenerateKey()
	if other.ID() == key.ID() {
		t.Fatal("two random keys share an ID")
	}
}

func TestStoreKey(t *testing.T) {
	home := t.TempDir()
	key, _ := GenerateKey()
	path, err := StoreKey(home, key)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, KeysDir(home): 0o700 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
		}
	}
	// Storing an older copy after a rotation keeps the rotated entry.
	old := &Key{Entries: append([]KeyEntry(nil), key.Entries...)}
	if err := key.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := StoreKey(home, key); err != nil {
		t.Fatal(err)
	}
	if _, err := StoreKey(home, old); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 2 {
		t.Fatalf("stored key has %d entries after storing an older copy, want 2", len(got.Entries))
	}
}
