// Package signing signs and verifies the fabric's canonical bytes in the format of
// sigstore's cosign, so that anything the fabric signs can be checked offline with the
// real cosign CLI, and anything signed with `cosign sign-blob` can be checked here.
//
// # What is signed
//
// The payload is always the exact byte string handed to Sign/Verify; in the fabric that
// is RFC 8785 canonical JSON (package canonical: canonical.Proto / canonical.Marshal).
// Nothing is added or stripped: no newline, no envelope, no pre-hash by the caller.
//
// # Formats
//
//   - ECDSA (cosign keys): P-256 only. The signature is ECDSA over SHA-256(payload),
//     ASN.1 DER encoded (SEQUENCE{r, s}), then standard base64 with padding. This is
//     byte-for-byte what `cosign sign-blob --key K --tlog-upload=false --yes FILE`
//     prints, and what `cosign verify-blob --key PUB --signature SIG
//     --insecure-ignore-tlog=true FILE` accepts. Verify also accepts the IEEE P1363
//     (r||s) form, as cosign does.
//   - Ed25519 (per-region vote keys): pure Ed25519 (RFC 8032, no pre-hash) over the
//     payload; the signature is the raw 64 bytes, standard base64 with padding.
//     Note this is not cosign's Ed25519ph mode: Ed25519 keys are for fabric-internal
//     votes, not for the cosign CLI.
//   - Public keys: PEM block "PUBLIC KEY" holding the PKIX (SubjectPublicKeyInfo) DER,
//     exactly as in a cosign.pub file.
//   - Key id: lower-case hex SHA-256 of that PKIX DER (64 characters).
//   - Private keys: cosign's "ENCRYPTED SIGSTORE PRIVATE KEY" PEM (the legacy
//     "ENCRYPTED COSIGN PRIVATE KEY" label is read too): PKCS#8 DER encrypted with
//     scrypt + NaCl secretbox (go-securesystemslib/encrypted), the same file
//     `cosign generate-key-pair` writes. The password is the caller's (by convention
//     the COSIGN_PASSWORD environment variable; empty is allowed).
//
// Whitespace around a base64 signature (a signature file ending in a newline) is
// ignored; anything else that is not valid standard base64 is malformed.
package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

var (
	// ErrBadSignature means the input was well formed (a supported public key and a
	// base64 signature) but the signature does not verify for this payload and key:
	// a changed payload, a different key, or signature bytes that are not a valid
	// signature. Test with errors.Is.
	ErrBadSignature = errors.New("signing: signature does not verify")

	// ErrMalformed wraps every error caused by unusable input: a public key that is not
	// a "PUBLIC KEY" PEM, a signature that is empty or not base64. It is never
	// returned for a mere mismatch (that is ErrBadSignature).
	ErrMalformed = errors.New("signing: malformed input")

	// ErrUnsupportedKey is returned (wrapped together with ErrMalformed) for a well
	// formed public key of a kind this package does not sign with: anything but ECDSA
	// P-256 and Ed25519.
	ErrUnsupportedKey = errors.New("signing: unsupported key type (want ECDSA P-256 or Ed25519)")

	// ErrUnknownKey is returned by Keyring.Verify for a key id that was never added.
	ErrUnknownKey = errors.New("signing: unknown key id")
)

// Signer signs payload bytes (the fabric's canonical JSON) in the formats described in
// the package documentation. Implementations are safe for concurrent use.
type Signer interface {
	// Sign returns the standard-base64 signature over exactly payload.
	Sign(payload []byte) (sigB64 string, err error)
	// PublicKeyPEM returns the "PUBLIC KEY" PEM (PKIX DER) of the signing key, as in a
	// cosign.pub file. The caller may not modify it.
	PublicKeyPEM() []byte
	// KeyID returns the lower-case hex SHA-256 of the PKIX DER public key.
	KeyID() string
}

// malformed wraps err as an ErrMalformed error.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// parsePublicKey decodes a "PUBLIC KEY" PEM and checks that it is a supported kind. It
// returns the key and the PKIX DER it came from.
func parsePublicKey(publicKeyPEM []byte) (crypto.PublicKey, []byte, error) {
	if len(bytes.TrimSpace(publicKeyPEM)) == 0 {
		return nil, nil, malformed("empty public key")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(publicKeyPEM)
	if err != nil {
		return nil, nil, malformed("public key: %v", err)
	}
	if err := checkSupported(pub); err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, malformed("public key: %v", err)
	}
	return pub, der, nil
}

func checkSupported(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: %w: ECDSA curve %s", ErrMalformed, ErrUnsupportedKey, k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return malformed("ed25519 public key of %d bytes", len(k))
		}
		return nil
	default:
		return fmt.Errorf("%w: %w: %T", ErrMalformed, ErrUnsupportedKey, pub)
	}
}

// loadVerifier returns the sigstore verifier for a supported public key: ECDSA with
// SHA-256, Ed25519 pure (no pre-hash).
func loadVerifier(pub crypto.PublicKey) (signature.Verifier, error) {
	var (
		v   signature.Verifier
		err error
	)
	switch pub.(type) {
	case *ecdsa.PublicKey:
		v, err = signature.LoadVerifier(pub, crypto.SHA256)
	case ed25519.PublicKey:
		v, err = signature.LoadVerifier(pub, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("%w: %w: %T", ErrMalformed, ErrUnsupportedKey, pub)
	}
	if err != nil {
		return nil, malformed("public key: %v", err)
	}
	return v, nil
}

// decodeSignature decodes a standard-base64 signature, ignoring surrounding whitespace.
func decodeSignature(sigB64 string) ([]byte, error) {
	s := strings.TrimSpace(sigB64)
	if s == "" {
		return nil, malformed("empty signature")
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, malformed("signature is not standard base64: %v", err)
	}
	if len(raw) == 0 {
		return nil, malformed("empty signature")
	}
	return raw, nil
}

// verifyWith runs v over payload; every failure is a mismatch (ErrBadSignature), since
// key and base64 were checked before.
func verifyWith(v signature.Verifier, payload []byte, sigB64 string) error {
	raw, err := decodeSignature(sigB64)
	if err != nil {
		return err
	}
	if err := v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(payload)); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// Verify checks sigB64 (standard base64, see package doc) over exactly payload with the
// "PUBLIC KEY" PEM publicKeyPEM, which may be ECDSA P-256 (cosign: ASN.1 ECDSA over
// SHA-256) or Ed25519 (raw 64-byte pure Ed25519).
//
// It returns nil on success; an error wrapping ErrBadSignature when the signature does
// not match; and an error wrapping ErrMalformed for an unusable key or signature
// encoding. It never panics, whatever the input.
func Verify(publicKeyPEM []byte, payload []byte, sigB64 string) error {
	pub, _, err := parsePublicKey(publicKeyPEM)
	if err != nil {
		return err
	}
	v, err := loadVerifier(pub)
	if err != nil {
		return err
	}
	return verifyWith(v, payload, sigB64)
}

// KeyIDFromPEM returns the key id (lower-case hex SHA-256 of the PKIX DER) of a
// supported "PUBLIC KEY" PEM. The id does not depend on PEM headers or line wrapping.
func KeyIDFromPEM(publicKeyPEM []byte) (string, error) {
	_, der, err := parsePublicKey(publicKeyPEM)
	if err != nil {
		return "", err
	}
	return keyIDFromDER(der), nil
}

func keyIDFromDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// publicKeyMaterial returns the "PUBLIC KEY" PEM and key id of a supported public key.
func publicKeyMaterial(pub crypto.PublicKey) (pemBytes []byte, keyID string, err error) {
	if err := checkSupported(pub); err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("signing: marshal public key: %w", err)
	}
	return cryptoutils.PEMEncode(cryptoutils.PublicKeyPEMType, der), keyIDFromDER(der), nil
}

// Keyring verifies signatures by key id. The zero value is an empty keyring ready for
// use; it is safe for concurrent use.
type Keyring struct {
	mu   sync.RWMutex
	keys map[string]keyringEntry
}

type keyringEntry struct {
	pem      []byte
	verifier signature.Verifier
}

// Add parses a "PUBLIC KEY" PEM (ECDSA P-256 or Ed25519), stores it and returns its key
// id. Adding the same key again is a no-op that returns the same id.
func (k *Keyring) Add(publicKeyPEM []byte) (keyID string, err error) {
	pub, der, err := parsePublicKey(publicKeyPEM)
	if err != nil {
		return "", err
	}
	v, err := loadVerifier(pub)
	if err != nil {
		return "", err
	}
	id := keyIDFromDER(der)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = make(map[string]keyringEntry)
	}
	if _, ok := k.keys[id]; !ok {
		k.keys[id] = keyringEntry{
			pem:      cryptoutils.PEMEncode(cryptoutils.PublicKeyPEMType, der),
			verifier: v,
		}
	}
	return id, nil
}

// AddFiles adds the "PUBLIC KEY" PEM file at each path (cosign.pub files).
func (k *Keyring) AddFiles(paths ...string) error {
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if _, err := k.Add(raw); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// PublicKeyPEM returns the normalised "PUBLIC KEY" PEM stored under keyID.
func (k *Keyring) PublicKeyPEM(keyID string) ([]byte, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	e, ok := k.keys[keyID]
	if !ok {
		return nil, false
	}
	return bytes.Clone(e.pem), true
}

// Len is the number of keys held.
func (k *Keyring) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys)
}

// Verify checks sigB64 over exactly payload with the key stored under keyID. Errors are
// as for the package-level Verify, plus ErrUnknownKey for a key id never added.
func (k *Keyring) Verify(keyID string, payload []byte, sigB64 string) error {
	k.mu.RLock()
	e, ok := k.keys[keyID]
	k.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	return verifyWith(e.verifier, payload, sigB64)
}

// VerifyAny reports whether sigB64 is a valid signature over payload by any key in the
// ring. For records (such as a consent) that do not name their key.
func (k *Keyring) VerifyAny(payload []byte, sigB64 string) bool {
	k.mu.RLock()
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	k.mu.RUnlock()
	for _, id := range ids {
		if k.Verify(id, payload, sigB64) == nil {
			return true
		}
	}
	return false
}
