package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/atomicfile"
)

// KeysDir is where berth keeps keys under its home directory, outside every
// repository, so a key never reaches git by accident.
func KeysDir(home string) string { return filepath.Join(home, "keys") }

// KeyPath is the file of the key with the given ID under home.
func KeyPath(home, id string) string { return filepath.Join(KeysDir(home), id+".key") }

// ReadKeyFile reads and parses a key file.
func ReadKeyFile(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes key to path with mode 0600, atomically.
func WriteKeyFile(path string, key *Key) error {
	b, err := key.MarshalBinary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}

// StoreKey saves key in home's key directory (mode 0700, files 0600) under its ID
// and returns the file's path. A key already stored under that ID is merged
// with key, so unlocking with an older copy never loses a rotated entry.
func StoreKey(home string, key *Key) (string, error) {
	if home == "" {
		return "", errors.New("berth home directory is not set (set BERTH_HOME)")
	}
	// git runs the filter from the repository, so the path it records must be absolute.
	home, err := filepath.Abs(home)
	if err != nil {
		return "", err
	}
	path := KeyPath(home, key.ID())
	merged := key
	if old, err := ReadKeyFile(path); err == nil {
		if merged, err = mergeKeys(old, key); err != nil {
			return "", fmt.Errorf("key file %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(KeysDir(home), 0o700); err != nil {
		return "", fmt.Errorf("creating %s: %w", KeysDir(home), err)
	}
	if err := os.Chmod(KeysDir(home), 0o700); err != nil {
		return "", err
	}
	return path, WriteKeyFile(path, merged)
}

// mergeKeys returns the union of two keys' entries; the same version holding
// different key material is an error.
func mergeKeys(a, b *Key) (*Key, error) {
	out := &Key{Name: a.Name}
	byVersion := map[uint32]KeyEntry{}
	for _, e := range a.Entries {
		byVersion[e.Version] = e
		out.Entries = append(out.Entries, e)
	}
	for _, e := range b.Entries {
		old, ok := byVersion[e.Version]
		if !ok {
			out.Entries = append(out.Entries, e)
			continue
		}
		if !bytes.Equal(old.AESKey[:], e.AESKey[:]) || !bytes.Equal(old.HMACKey[:], e.HMACKey[:]) {
			return nil, fmt.Errorf("two different keys claim version %d; move the stored key aside and unlock again", e.Version)
		}
	}
	return out, nil
}
