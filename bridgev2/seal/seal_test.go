package seal_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/trestle-bridge/trestle/bridgev2/seal"
)

const (
	keyA = "first-secret-key-0123456789abcdefghij"
	keyB = "second-secret-key-0123456789abcdefghij"
)

func TestSealedValueOpensOnlyWithItsKeyAndRow(t *testing.T) {
	a, err := seal.NewKeyring(keyA)
	if err != nil {
		t.Fatal(err)
	}
	sealed := a.Seal([]byte(`{"auth_token":"tok123"}`), []byte("login1"))
	if strings.Contains(sealed, "tok123") || !seal.IsSealed(sealed) || seal.KeyID(sealed) != a.CurrentID() {
		t.Fatalf("sealed value %q", sealed)
	}
	plain, err := a.Open(sealed, []byte("login1"))
	if err != nil || string(plain) != `{"auth_token":"tok123"}` {
		t.Fatalf("open: %q, %v", plain, err)
	}
	if _, err := a.Open(sealed, []byte("login2")); err == nil {
		t.Fatal("a value moved to another row opened")
	}
	b, _ := seal.NewKeyring(keyB)
	if _, err := b.Open(sealed, []byte("login1")); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("open with another key: %v, want ErrUnknownKey", err)
	}
}

func TestRotatedKeyringOpensOldValuesAndSealsWithTheNewKey(t *testing.T) {
	a, _ := seal.NewKeyring(keyA)
	old := a.Seal([]byte("secret"), nil)
	rotated, err := seal.NewKeyring(keyB, keyA)
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := rotated.Open(old, nil); err != nil || string(plain) != "secret" {
		t.Fatalf("old value under the rotated keyring: %q, %v", plain, err)
	}
	fresh := rotated.Seal([]byte("secret"), nil)
	if seal.KeyID(fresh) == seal.KeyID(old) {
		t.Fatal("the rotated keyring still seals with the old key")
	}
	if _, err := a.Open(fresh, nil); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("the old keyring opened a value of the new key: %v", err)
	}
}

func TestShortKeysAreRefused(t *testing.T) {
	if _, err := seal.NewKeyring("short"); err == nil {
		t.Fatal("a 5-character key was accepted")
	}
	if _, err := seal.NewKeyring(keyA, "short"); err == nil {
		t.Fatal("a 5-character old key was accepted")
	}
}
