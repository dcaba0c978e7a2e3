package secrets

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Key file layout, as git-crypt 0.7 writes it (key.cpp).
const (
	keyFileMagic   = "\x00GITCRYPTKEY"
	keyFileVersion = 2

	fieldEnd     = 0
	fieldKeyName = 1 // header
	fieldVersion = 1 // entry
	fieldAESKey  = 3 // entry
	fieldHMACKey = 5 // entry

	// AESKeySize and HMACKeySize are the sizes of a key entry's two keys.
	AESKeySize  = 32
	HMACKeySize = 64

	maxKeyName    = 128
	maxFieldLen   = 1 << 20
	defaultKeyTag = "default"
)

var (
	// ErrNoKeyEntries means a key file holds no key entry.
	ErrNoKeyEntries = errors.New("key file holds no key")
	// ErrIncompatibleKey means the key file needs a newer git-crypt (or berth): it
	// has a critical (odd-numbered) field this version does not know.
	ErrIncompatibleKey = errors.New("key file has a field this version does not understand; upgrade berth")
	// ErrMalformedKey means the bytes are not a git-crypt key file.
	ErrMalformedKey = errors.New("malformed git-crypt key file")
)

// KeyEntry is one version of a key: the AES key that encrypts and the HMAC key
// that derives nonces and authenticates.
type KeyEntry struct {
	Version uint32
	AESKey  [AESKeySize]byte
	HMACKey [HMACKeySize]byte
}

// Key is a git-crypt key file: an optional name (empty for git-crypt's default key)
// and one or more entries. berth encrypts with the entry of the highest version and
// decrypts with whichever entry authenticates, so a rotated key keeps the old
// entries for history. git-crypt itself only reads version 0; Export gives it a
// file it can use.
type Key struct {
	Name    string
	Entries []KeyEntry
}

// GenerateKey returns a new key with one entry (version 0) read from crypto/rand.
func GenerateKey() (*Key, error) {
	e, err := newEntry(0)
	if err != nil {
		return nil, err
	}
	return &Key{Entries: []KeyEntry{e}}, nil
}

func newEntry(version uint32) (KeyEntry, error) {
	e := KeyEntry{Version: version}
	if _, err := io.ReadFull(rand.Reader, e.AESKey[:]); err != nil {
		return KeyEntry{}, fmt.Errorf("generating key: %w", err)
	}
	if _, err := io.ReadFull(rand.Reader, e.HMACKey[:]); err != nil {
		return KeyEntry{}, fmt.Errorf("generating key: %w", err)
	}
	return e, nil
}

// Latest returns the entry with the highest version, the one that encrypts.
func (k *Key) Latest() (*KeyEntry, error) {
	if k == nil || len(k.Entries) == 0 {
		return nil, ErrNoKeyEntries
	}
	best := 0
	for i, e := range k.Entries {
		if e.Version > k.Entries[best].Version {
			best = i
		}
	}
	return &k.Entries[best], nil
}

func (k *Key) newestFirst() []KeyEntry {
	es := slices.Clone(k.Entries)
	slices.SortStableFunc(es, func(a, b KeyEntry) int {
		switch {
		case a.Version > b.Version:
			return -1
		case a.Version < b.Version:
			return 1
		}
		return 0
	})
	return es
}

// Rotate adds a new random entry whose version is one above the latest, so new
// encryptions use it while the old entries still decrypt history.
func (k *Key) Rotate() error {
	latest, err := k.Latest()
	if err != nil {
		return err
	}
	if latest.Version == ^uint32(0) {
		return errors.New("key has used every version number (2^32 rotations); export the secrets and start a new repository key")
	}
	e, err := newEntry(latest.Version + 1)
	if err != nil {
		return err
	}
	k.Entries = append(k.Entries, e)
	return nil
}

// Export returns a key file git-crypt can use: only the latest entry, as version 0,
// because git-crypt 0.7 encrypts with its latest entry but always decrypts with
// version 0.
func (k *Key) Export() (*Key, error) {
	latest, err := k.Latest()
	if err != nil {
		return nil, err
	}
	e := *latest
	e.Version = 0
	return &Key{Name: k.Name, Entries: []KeyEntry{e}}, nil
}

// ID is a short public identifier of the key's first entry: a truncated SHA-256
// that reveals nothing about the key. It names the key's file in berth's home and
// stays the same when the key is rotated.
func (k *Key) ID() string {
	if k == nil || len(k.Entries) == 0 {
		return ""
	}
	first := k.newestFirst()[len(k.Entries)-1]
	h := sha256.New()
	h.Write([]byte("berth key id\x00"))
	h.Write(first.AESKey[:])
	h.Write(first.HMACKey[:])
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// MarshalBinary encodes the key in git-crypt's key file format, entries newest
// first as git-crypt writes them.
func (k *Key) MarshalBinary() ([]byte, error) {
	if len(k.Entries) == 0 {
		return nil, ErrNoKeyEntries
	}
	if k.Name != "" {
		if err := ValidateKeyName(k.Name); err != nil {
			return nil, err
		}
	}
	seen := map[uint32]bool{}
	for _, e := range k.Entries {
		if seen[e.Version] {
			return nil, fmt.Errorf("key has two entries with version %d", e.Version)
		}
		seen[e.Version] = true
	}
	var b bytes.Buffer
	b.WriteString(keyFileMagic)
	putU32(&b, keyFileVersion)
	if k.Name != "" {
		putU32(&b, fieldKeyName)
		putU32(&b, uint32(len(k.Name)))
		b.WriteString(k.Name)
	}
	putU32(&b, fieldEnd)
	for _, e := range k.newestFirst() {
		putU32(&b, fieldVersion)
		putU32(&b, 4)
		putU32(&b, e.Version)
		putU32(&b, fieldAESKey)
		putU32(&b, AESKeySize)
		b.Write(e.AESKey[:])
		putU32(&b, fieldHMACKey)
		putU32(&b, HMACKeySize)
		b.Write(e.HMACKey[:])
		putU32(&b, fieldEnd)
	}
	return b.Bytes(), nil
}

func putU32(b *bytes.Buffer, v uint32) {
	var x [4]byte
	binary.BigEndian.PutUint32(x[:], v)
	b.Write(x[:])
}

// ParseKey decodes a git-crypt key file (format version 2). Like git-crypt it
// rejects unknown odd-numbered (critical) fields and skips unknown even ones.
func ParseKey(data []byte) (*Key, error) {
	r := &keyReader{b: data}
	if magic := r.bytes(len(keyFileMagic)); r.err != nil || string(magic) != keyFileMagic {
		return nil, fmt.Errorf("%w: it does not start with \\0GITCRYPTKEY", ErrMalformedKey)
	}
	if v := r.u32(); r.err != nil {
		return nil, fmt.Errorf("%w: no format version", ErrMalformedKey)
	} else if v != keyFileVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d (a git-crypt 0.3 legacy key must be migrated with 'git-crypt migrate-key')", ErrIncompatibleKey, v, keyFileVersion)
	}
	k := &Key{}
	for {
		id := r.u32()
		if r.err != nil {
			return nil, fmt.Errorf("%w: header ends early", ErrMalformedKey)
		}
		if id == fieldEnd {
			break
		}
		n := r.u32()
		switch {
		case r.err != nil:
			return nil, fmt.Errorf("%w: header ends early", ErrMalformedKey)
		case id == fieldKeyName:
			if n > maxKeyName {
				return nil, fmt.Errorf("%w: key name longer than %d bytes", ErrMalformedKey, maxKeyName)
			}
			k.Name = string(r.bytes(int(n)))
			if r.err != nil {
				return nil, fmt.Errorf("%w: key name ends early", ErrMalformedKey)
			}
			if err := ValidateKeyName(k.Name); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
			}
		case id&1 == 1:
			return nil, fmt.Errorf("%w (header field %d)", ErrIncompatibleKey, id)
		default:
			if n > maxFieldLen {
				return nil, fmt.Errorf("%w: header field %d is %d bytes long", ErrMalformedKey, id, n)
			}
			r.bytes(int(n))
			if r.err != nil {
				return nil, fmt.Errorf("%w: header field %d ends early", ErrMalformedKey, id)
			}
		}
	}
	seen := map[uint32]bool{}
	for r.more() {
		e, err := r.entry()
		if err != nil {
			return nil, err
		}
		if seen[e.Version] {
			return nil, fmt.Errorf("%w: two entries with version %d", ErrMalformedKey, e.Version)
		}
		seen[e.Version] = true
		k.Entries = append(k.Entries, e)
	}
	if len(k.Entries) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, ErrNoKeyEntries)
	}
	return k, nil
}

type keyReader struct {
	b   []byte
	err error
}

func (r *keyReader) more() bool { return r.err == nil && len(r.b) > 0 }

func (r *keyReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *keyReader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *keyReader) entry() (KeyEntry, error) {
	var e KeyEntry
	var have struct{ version, aes, hmac bool }
	for {
		id := r.u32()
		if r.err != nil {
			return e, fmt.Errorf("%w: key entry ends early", ErrMalformedKey)
		}
		if id == fieldEnd {
			break
		}
		n := r.u32()
		if r.err != nil {
			return e, fmt.Errorf("%w: key entry ends early", ErrMalformedKey)
		}
		switch {
		case id == fieldVersion:
			if n != 4 {
				return e, fmt.Errorf("%w: version field is %d bytes, want 4", ErrMalformedKey, n)
			}
			e.Version = r.u32()
			have.version = true
		case id == fieldAESKey:
			if n != AESKeySize {
				return e, fmt.Errorf("%w: AES key is %d bytes, want %d", ErrMalformedKey, n, AESKeySize)
			}
			copy(e.AESKey[:], r.bytes(AESKeySize))
			have.aes = true
		case id == fieldHMACKey:
			if n != HMACKeySize {
				return e, fmt.Errorf("%w: HMAC key is %d bytes, want %d", ErrMalformedKey, n, HMACKeySize)
			}
			copy(e.HMACKey[:], r.bytes(HMACKeySize))
			have.hmac = true
		case id&1 == 1:
			return e, fmt.Errorf("%w (key entry field %d)", ErrIncompatibleKey, id)
		default:
			if n > maxFieldLen {
				return e, fmt.Errorf("%w: key entry field %d is %d bytes long", ErrMalformedKey, id, n)
			}
			r.bytes(int(n))
		}
		if r.err != nil {
			return e, fmt.Errorf("%w: key entry field %d ends early", ErrMalformedKey, id)
		}
	}
	if !have.version || !have.aes || !have.hmac {
		return e, fmt.Errorf("%w: a key entry lacks its version, AES key or HMAC key", ErrMalformedKey)
	}
	return e, nil
}

// ValidateKeyName checks a git-crypt key name: 1 to 128 ASCII letters, digits,
// '-' or '_', and not "default" (which is the unnamed key).
func ValidateKeyName(name string) error {
	if name == "" || len(name) > maxKeyName {
		return fmt.Errorf("key name %q must be 1 to %d characters", name, maxKeyName)
	}
	if name == defaultKeyTag {
		return fmt.Errorf("key name %q is reserved for the unnamed key", name)
	}
	for _, c := range name {
		ok := c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return fmt.Errorf("key name %q may only hold letters, digits, '-' and '_'", name)
		}
	}
	return nil
}
