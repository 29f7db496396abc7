package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// ed25519Signer signs with pure Ed25519 (RFC 8032): base64 of the raw 64-byte
// signature over exactly the payload. Signatures are deterministic.
type ed25519Signer struct {
	priv   ed25519.PrivateKey
	pemPub []byte
	keyID  string
}

// NewEd25519Signer returns the Ed25519 Signer whose private key is derived from the
// 32-byte seed (RFC 8032), so a simulated region given the same seed always has the
// same key and key id. It panics if len(seed) != 32, like ed25519.NewKeyFromSeed: the
// seed length is a programming error, not an input error.
func NewEd25519Signer(seed []byte) Signer {
	if len(seed) != ed25519.SeedSize {
		panic(fmt.Sprintf("signing: Ed25519 seed must be %d bytes, got %d", ed25519.SeedSize, len(seed)))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pemPub, id, err := publicKeyMaterial(priv.Public())
	if err != nil {
		// Unreachable: an Ed25519 public key always marshals.
		panic(err)
	}
	return &ed25519Signer{priv: priv, pemPub: pemPub, keyID: id}
}

// GenerateEd25519 returns a Signer for a new random Ed25519 key. Use Ed25519Seed to
// persist it and NewEd25519Signer to restore it.
func GenerateEd25519() (Signer, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("signing: ed25519 seed: %w", err)
	}
	return NewEd25519Signer(seed), nil
}

// Ed25519Seed returns a copy of the 32-byte seed of an Ed25519 Signer made by this
// package, and false for any other Signer.
func Ed25519Seed(s Signer) ([]byte, bool) {
	e, ok := s.(*ed25519Signer)
	if !ok {
		return nil, false
	}
	return append([]byte(nil), e.priv.Seed()...), true
}

// Sign returns base64(Ed25519(payload)), the raw 64-byte signature.
func (s *ed25519Signer) Sign(payload []byte) (string, error) {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(s.priv, payload)), nil
}

func (s *ed25519Signer) PublicKeyPEM() []byte { return s.pemPub }
func (s *ed25519Signer) KeyID() string        { return s.keyID }
