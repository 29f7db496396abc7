package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/decision-fabric/fabric/internal/keyfile"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/signature"
)

// File names written by GenerateCosignKey and LoadOrCreateSimulationKey, the same as
// `cosign generate-key-pair`.
const (
	CosignKeyFile = "cosign.key"
	CosignPubFile = "cosign.pub"
)

// Modes of the written key files, as cosign writes them.
const (
	privateKeyMode fs.FileMode = 0o600
	publicKeyMode  fs.FileMode = 0o644
)

// ecdsaSigner signs with an ECDSA P-256 key: ASN.1 ECDSA over SHA-256(payload), the
// signature `cosign sign-blob` produces for a cosign key.
type ecdsaSigner struct {
	sv     signature.SignerVerifier
	pemPub []byte
	keyID  string
}

func newECDSASigner(sv signature.SignerVerifier) (*ecdsaSigner, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing: public key: %w", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: %w: cosign key holds %T, want ECDSA P-256", ErrMalformed, ErrUnsupportedKey, pub)
	}
	pemPub, id, err := publicKeyMaterial(pub)
	if err != nil {
		return nil, err
	}
	return &ecdsaSigner{sv: sv, pemPub: pemPub, keyID: id}, nil
}

// NewECDSASigner returns the cosign-format Signer of an in-memory ECDSA P-256 key: the
// signatures of a cosign key, without a key file (and without the scrypt run that
// decrypting one costs). For tests and tools that hold a key already.
func NewECDSASigner(priv *ecdsa.PrivateKey) (Signer, error) {
	return newECDSASignerFromKey(priv)
}

// newECDSASignerFromKey wraps an in-memory P-256 private key (tests and benchmarks).
func newECDSASignerFromKey(priv *ecdsa.PrivateKey) (*ecdsaSigner, error) {
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return newECDSASigner(sv)
}

// Sign returns base64(ASN.1 ECDSA P-256 signature over SHA-256(payload)). Signatures are
// randomised: signing the same payload twice gives different, equally valid strings.
func (s *ecdsaSigner) Sign(payload []byte) (string, error) {
	raw, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return "", fmt.Errorf("signing: ecdsa sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

func (s *ecdsaSigner) PublicKeyPEM() []byte { return s.pemPub }
func (s *ecdsaSigner) KeyID() string        { return s.keyID }

// ParseCosignKey decrypts an "ENCRYPTED SIGSTORE PRIVATE KEY" (or legacy "ENCRYPTED
// COSIGN PRIVATE KEY") PEM with password and returns its Signer. Only ECDSA P-256 keys
// (what `cosign generate-key-pair` makes) are accepted. A nil password is the empty
// password. A wrong password fails with a decryption error.
func ParseCosignKey(keyPEM []byte, password []byte) (Signer, error) {
	if password == nil {
		password = []byte{}
	}
	sv, err := cosign.LoadPrivateKey(keyPEM, password, nil)
	if err != nil {
		return nil, fmt.Errorf("signing: load cosign key: %w", err)
	}
	return newECDSASigner(sv)
}

// LoadCosignKey reads the cosign private key file at path (see ParseCosignKey) and
// decrypts it with password. By the cosign convention the password comes from the
// COSIGN_PASSWORD environment variable; reading it is the caller's job.
func LoadCosignKey(path string, password []byte) (Signer, error) {
	keyPEM, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing: read cosign key: %w", err)
	}
	s, err := ParseCosignKey(keyPEM, password)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return s, nil
}

// generateKeyBytes makes a new cosign key pair (ECDSA P-256, PKCS#8 encrypted with
// scrypt + secretbox under password) as PEM bytes, exactly as cosign does.
func generateKeyBytes(password []byte) (*cosign.KeysBytes, error) {
	if password == nil {
		password = []byte{}
	}
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, fmt.Errorf("signing: generate cosign key: %w", err)
	}
	return kb, nil
}

// GenerateCosignKey creates a new cosign key pair in dir, like `cosign generate-key-pair`
// run there: dir/cosign.key (encrypted private key, mode 0600) and dir/cosign.pub
// ("PUBLIC KEY" PEM, mode 0644). dir is created (0700) if missing. Unlike the CLI, which
// asks before overwriting, it never replaces an existing key: if either file exists it
// fails with an error wrapping fs.ErrExist. The key file appears atomically (complete
// or not at all). It returns the Signer of the new key.
func GenerateCosignKey(dir string, password []byte) (Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	keyPath := filepath.Join(dir, CosignKeyFile)
	pubPath := filepath.Join(dir, CosignPubFile)
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("signing: %s: %w", p, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("signing: %w", err)
		}
	}
	kb, err := generateKeyBytes(password)
	if err != nil {
		return nil, err
	}
	s, err := ParseCosignKey(kb.PrivateBytes, password)
	if err != nil {
		return nil, err
	}
	if err := keyfile.CreateExclusive(keyPath, kb.PrivateBytes, privateKeyMode); err != nil {
		return nil, err
	}
	if err := keyfile.WriteAtomic(pubPath, s.PublicKeyPEM(), publicKeyMode); err != nil {
		return nil, err
	}
	return s, nil
}

// simKeyMu serialises LoadOrCreateSimulationKey within one process; across processes
// the hard-link publication in createExclusive decides the winner.
var simKeyMu sync.Mutex

// LoadOrCreateSimulationKey returns the SIMULATION_MODE signing key kept at
// dataDir/keys/cosign.key (with dataDir/keys/cosign.pub beside it), a cosign key with the
// empty password. The first call creates it; every later call, and every concurrent
// first call (goroutines or processes sharing dataDir), gets the same key: the key file
// is written to a temporary name and published with a hard link that only one creator
// can win, and the losers load the winner's file. The .pub file is (re)written from the
// private key if it is missing or differs. An existing key file that does not decrypt
// with the empty password is an error; it is never replaced.
func LoadOrCreateSimulationKey(dataDir string) (Signer, error) {
	simKeyMu.Lock()
	defer simKeyMu.Unlock()

	dir := filepath.Join(dataDir, "keys")
	keyPath := filepath.Join(dir, CosignKeyFile)
	pubPath := filepath.Join(dir, CosignPubFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}

	s, err := LoadCosignKey(keyPath, nil)
	if errors.Is(err, fs.ErrNotExist) {
		kb, genErr := generateKeyBytes(nil)
		if genErr != nil {
			return nil, genErr
		}
		if cErr := keyfile.CreateExclusive(keyPath, kb.PrivateBytes, privateKeyMode); cErr != nil && !errors.Is(cErr, fs.ErrExist) {
			return nil, cErr
		}
		// Winner or loser, the file now holds the one agreed key.
		s, err = LoadCosignKey(keyPath, nil)
	}
	if err != nil {
		return nil, err
	}
	if err := keyfile.Ensure(pubPath, s.PublicKeyPEM(), publicKeyMode); err != nil {
		return nil, err
	}
	return s, nil
}
