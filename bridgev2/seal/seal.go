// Package seal encrypts small secrets for storage (a login's credentials in
// user_login.metadata) with AES-256-GCM under keys from the config, so that
// a database dump or backup alone does not reveal them.
//
// A sealed value names the key it was sealed with (by a short identifier
// derived from the key, never the key itself), so a keyring holding the
// current key and the keys it replaced can open every value, and a value
// sealed with a key the keyring lacks fails with a message saying so rather
// than as garbage.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinKeyLength is the shortest secret accepted, in characters. The secret is
// stretched into the AES key with HKDF, which adds no strength, so a short
// one would be guessable from a dump.
const MinKeyLength = 32

// prefix starts every sealed value. Plain JSON metadata never starts with
// it, which is how rows written before sealing existed are recognised.
const prefix = "trestle-sealed:v1:"

// ErrUnknownKey is returned by Open for a value sealed with a key that is not
// in the keyring.
var ErrUnknownKey = errors.New("sealed with a key that is not configured")

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring seals with its current key and opens with the current key or any
// of the old ones.
type Keyring struct {
	current key
	byID    map[string]key
}

// NewKeyring builds a keyring from the current secret and the secrets it
// replaced (newest first; order only matters for readability).
func NewKeyring(current string, old ...string) (*Keyring, error) {
	cur, err := deriveKey(current)
	if err != nil {
		return nil, err
	}
	k := &Keyring{current: cur, byID: map[string]key{cur.id: cur}}
	for i, s := range old {
		o, err := deriveKey(s)
		if err != nil {
			return nil, fmt.Errorf("old key %d: %w", i+1, err)
		}
		k.byID[o.id] = o
	}
	return k, nil
}

func deriveKey(secret string) (key, error) {
	secret = strings.TrimSpace(secret)
	if len(secret) < MinKeyLength {
		return key{}, fmt.Errorf("a secret key must be at least %d characters long (it is %d)", MinKeyLength, len(secret))
	}
	material, err := hkdf.Key(sha256.New, []byte(secret), nil, "trestle seal aes-256-gcm", 32)
	if err != nil {
		return key{}, err
	}
	idBytes, err := hkdf.Key(sha256.New, []byte(secret), nil, "trestle seal key id", 4)
	if err != nil {
		return key{}, err
	}
	block, err := aes.NewCipher(material)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	return key{id: hex.EncodeToString(idBytes), aead: aead}, nil
}

// CurrentID identifies the current key in sealed values and messages; it
// reveals nothing about the key.
func (k *Keyring) CurrentID() string { return k.current.id }

// IsSealed reports whether s is a sealed value (as opposed to plaintext
// written before sealing was turned on).
func IsSealed(s string) bool { return strings.HasPrefix(s, prefix) }

// KeyID returns the identifier of the key s was sealed with, or "" if s is
// not a sealed value.
func KeyID(s string) string {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ":")
	return id
}

// Seal encrypts plaintext with the current key. aad binds the value to its
// place (the row's ID), so a sealed value copied into another row does not
// open there.
func (k *Keyring) Seal(plaintext, aad []byte) string {
	nonce := make([]byte, k.current.aead.NonceSize())
	_, _ = rand.Read(nonce)
	out := k.current.aead.Seal(nonce, nonce, plaintext, aad)
	return prefix + k.current.id + ":" + base64.RawStdEncoding.EncodeToString(out)
}

// Open decrypts a value made by Seal with any key of the keyring.
func (k *Keyring) Open(sealed string, aad []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return nil, errors.New("not a sealed value")
	}
	id, body, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, errors.New("malformed sealed value")
	}
	kk, ok := k.byID[id]
	if !ok {
		return nil, fmt.Errorf("key %s: %w", id, ErrUnknownKey)
	}
	raw, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil || len(raw) < kk.aead.NonceSize() {
		return nil, errors.New("malformed sealed value")
	}
	plain, err := kk.aead.Open(nil, raw[:kk.aead.NonceSize()], raw[kk.aead.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("sealed value does not authenticate under key %s (corrupted, or moved from another row): %w", id, err)
	}
	return plain, nil
}
