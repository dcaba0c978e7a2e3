// Package secrets keeps secret files encrypted in a git repository, byte-compatible
// with git-crypt 0.7: the same key file, the same ciphertext, the same git filter
// wiring. It adds what git-crypt lacks: keys shared per teammate with age, key
// rotation, guards against committing plaintext, and a history scanner.
package secrets
