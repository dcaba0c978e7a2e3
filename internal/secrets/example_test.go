package secrets_test

import (
	"fmt"

	"berth.dev/berth/internal/secrets"
)

// The controller decrypts in process, with the key file it reads from a
// Kubernetes Secret and the blob it reads from git; no git-crypt binary needed.
func Example() {
	key, err := secrets.GenerateKey() // in the controller: secrets.ParseKey(keyFileBytes)
	if err != nil {
		panic(err)
	}
	blob, err := secrets.Encrypt(key, []byte("password: hunter2\n"))
	if err != nil {
		panic(err)
	}
	plain, err := secrets.Decrypt(key, blob)
	if err != nil {
		panic(err)
	}
	fmt.Println(secrets.IsEncrypted(blob), len(blob)-len(plain) == secrets.Overhead)
	fmt.Print(string(plain))
	// Output:
	// true true
	// password: hunter2
}

// A secret value masks itself wherever it is printed.
func ExampleValue() {
	v := secrets.NewValue("hunter2")
	fmt.Println(v)
	fmt.Printf("%q %x\n", v, v)
	// Output:
	// ********
	// ******** ********
}
