package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// Header starts every file git-crypt (and berth) encrypts: "\0GITCRYPT\0".
var Header = []byte("\x00GITCRYPT\x00")

// NonceSize is the length of the nonce that follows Header: the first bytes of
// HMAC-SHA1(HMAC key, plaintext), so identical plaintexts encrypt identically and
// git diffs stay stable.
const NonceSize = 12

// Overhead is how much longer a ciphertext is than its plaintext.
const Overhead = len("\x00GITCRYPT\x00") + NonceSize

// maxPlaintext is the most AES-CTR with a 32-bit block counter can encrypt under one
// nonce, the limit git-crypt enforces too.
const maxPlaintext = (1 << 32) * aes.BlockSize

var (
	// ErrNotEncrypted means the input does not start with Header.
	ErrNotEncrypted = errors.New("not a git-crypt encrypted file (no \\0GITCRYPT\\0 header)")
	// ErrTruncated means the input has the header but not a whole nonce.
	ErrTruncated = errors.New("encrypted file is truncated: shorter than its header and nonce")
	// ErrTampered means no key reproduces the file's nonce: the file was changed
	// after encryption, or it was encrypted with a key that is not this one.
	ErrTampered = errors.New("encrypted file has been tampered with, or was encrypted with another key")
	// ErrTooLarge means the plaintext exceeds what one AES-CTR nonce can cover.
	ErrTooLarge = errors.New("file too large to encrypt (git-crypt's limit is 64 GiB)")
)

// IsEncrypted reports whether b starts with the git-crypt header.
func IsEncrypted(b []byte) bool { return bytes.HasPrefix(b, Header) }

// Encrypt encrypts plaintext with the key's latest entry exactly as `git-crypt clean`
// does: Header, nonce, AES-256-CTR(plaintext).
func Encrypt(key *Key, plaintext []byte) ([]byte, error) {
	e, err := key.Latest()
	if err != nil {
		return nil, err
	}
	return e.encrypt(plaintext)
}

func (e *KeyEntry) encrypt(plaintext []byte) ([]byte, error) {
	if uint64(len(plaintext)) > maxPlaintext {
		return nil, ErrTooLarge
	}
	mac := hmac.New(sha1.New, e.HMACKey[:])
	mac.Write(plaintext)
	nonce := mac.Sum(nil)[:NonceSize]
	out := make([]byte, Overhead+len(plaintext))
	copy(out, Header)
	copy(out[len(Header):], nonce)
	if err := ctr(e.AESKey[:], nonce, out[Overhead:], plaintext); err != nil {
		return nil, err
	}
	return out, nil
}

// Decrypt decrypts a git-crypt encrypted file. It tries the key's entries newest
// first and returns the plaintext of the one whose HMAC reproduces the nonce, so
// files encrypted before a rotation still decrypt. It never returns unauthenticated
// plaintext.
func Decrypt(key *Key, ciphertext []byte) ([]byte, error) {
	if !IsEncrypted(ciphertext) {
		if len(ciphertext) < len(Header) && bytes.HasPrefix(Header, ciphertext) && len(ciphertext) > 0 {
			return nil, ErrTruncated
		}
		return nil, ErrNotEncrypted
	}
	if len(ciphertext) < Overhead {
		return nil, ErrTruncated
	}
	if key == nil || len(key.Entries) == 0 {
		return nil, ErrNoKeyEntries
	}
	nonce := ciphertext[len(Header):Overhead]
	body := ciphertext[Overhead:]
	plain := make([]byte, len(body))
	for _, e := range key.newestFirst() {
		if err := ctr(e.AESKey[:], nonce, plain, body); err != nil {
			return nil, err
		}
		mac := hmac.New(sha1.New, e.HMACKey[:])
		mac.Write(plain)
		if subtle.ConstantTimeCompare(mac.Sum(nil)[:NonceSize], nonce) == 1 {
			return plain, nil
		}
	}
	clear(plain)
	return nil, ErrTampered
}

// ctr is git-crypt's AES-CTR: the counter block is the 12-byte nonce followed by
// a big-endian uint32 block index starting at 0, which is what crypto/cipher's CTR
// mode does when given that block as its IV.
func ctr(key, nonce, dst, src []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("aes key: %w", err)
	}
	iv := make([]byte, aes.BlockSize)
	copy(iv, nonce)
	binary.BigEndian.PutUint32(iv[NonceSize:], 0)
	cipher.NewCTR(block, iv).XORKeyStream(dst, src)
	return nil
}
