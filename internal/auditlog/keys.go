package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/decision-fabric/fabric/internal/keyfile"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/note"
)

// KeyName is the name of the checkpoint signing key in signed notes (the
// "— decision-fabric/audit ..." signature line). Each tenant's log has its
// own origin under it (see Origin).
const KeyName = "decision-fabric/audit"

// Key files inside the key directory. The private halves are written 0600.
const (
	Ed25519KeyFile = "audit-checkpoint-ed25519.key" // note signer key: PRIVATE+KEY+decision-fabric/audit+<hash>+<base64>
	Ed25519PubFile = "audit-checkpoint-ed25519.pub" // note verifier key: decision-fabric/audit+<hash>+<base64>
	MLDSAKeyFile   = "audit-checkpoint-mldsa65.key" // PEM "PRIVATE KEY": PKCS #8 with the 32-byte seed (RFC 9881)
	MLDSAPubFile   = "audit-checkpoint-mldsa65.pub" // PEM "PUBLIC KEY": SubjectPublicKeyInfo (RFC 9881)
)

const (
	privateKeyMode fs.FileMode = 0o600
	publicKeyMode  fs.FileMode = 0o644
)

// oidMLDSA65 is id-ml-dsa-65 (NIST CSOR, RFC 9881).
var oidMLDSA65 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}

// Keys sign checkpoints twice: Ed25519 in a C2SP signed note, and ML-DSA-65
// (FIPS 204) over the same checkpoint body, so a checkpoint stays
// unforgeable if either scheme falls.
type Keys struct {
	noteSigner note.Signer
	skey       string // encoded note signer key (secret)
	verifier   *Verifier
	mldsa      *mldsa65.PrivateKey
	mldsaSeed  [mldsa65.SeedSize]byte
}

// Verifier checks checkpoints with the public halves of Keys. It holds no secret.
type Verifier struct {
	note       note.Verifier
	vkey       string
	mldsa      *mldsa65.PublicKey
	mldsaPEM   []byte
	mldsaKeyID string
}

// GenerateKeys returns fresh keys.
func GenerateKeys() (*Keys, error) {
	skey, _, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		return nil, fmt.Errorf("auditlog: generate Ed25519 key: %w", err)
	}
	var seed [mldsa65.SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("auditlog: generate ML-DSA-65 key: %w", err)
	}
	return newKeys(skey, seed)
}

func newKeys(skey string, seed [mldsa65.SeedSize]byte) (*Keys, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("auditlog: Ed25519 note key: %w", err)
	}
	if signer.Name() != KeyName {
		return nil, fmt.Errorf("auditlog: Ed25519 note key is named %q, want %q", signer.Name(), KeyName)
	}
	vkey, err := verifierKey(skey)
	if err != nil {
		return nil, err
	}
	pub, priv := mldsa65.NewKeyFromSeed(&seed)
	v, err := newVerifier(vkey, pub)
	if err != nil {
		return nil, err
	}
	return &Keys{noteSigner: signer, skey: skey, verifier: v, mldsa: priv, mldsaSeed: seed}, nil
}

// verifierKey derives the note verifier key ("name+hash+base64(0x01||pub)")
// from an encoded Ed25519 signer key.
func verifierKey(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<base64>; the base64 may itself contain '+'.
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("auditlog: malformed Ed25519 note key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 33 || raw[0] != 1 {
		return "", errors.New("auditlog: malformed Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return fmt.Sprintf("%s+%s+%s", parts[2], parts[3], base64.StdEncoding.EncodeToString(append([]byte{1}, pub...))), nil
}

// NewVerifier returns a verifier from the public keys a verifier is given: the
// note verifier key text (the .pub file beside the Ed25519 key) and the
// ML-DSA-65 "PUBLIC KEY" PEM.
func NewVerifier(noteVerifierKey string, mldsaPublicKeyPEM []byte) (*Verifier, error) {
	pub, err := parseMLDSAPublicKey(mldsaPublicKeyPEM)
	if err != nil {
		return nil, err
	}
	return newVerifier(strings.TrimSpace(noteVerifierKey), pub)
}

func newVerifier(vkey string, pub *mldsa65.PublicKey) (*Verifier, error) {
	nv, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("auditlog: Ed25519 note verifier key: %w", err)
	}
	if nv.Name() != KeyName {
		return nil, fmt.Errorf("auditlog: note verifier key is named %q, want %q", nv.Name(), KeyName)
	}
	der, err := marshalMLDSAPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &Verifier{
		note:       nv,
		vkey:       vkey,
		mldsa:      pub,
		mldsaPEM:   pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		mldsaKeyID: hex.EncodeToString(sum[:]),
	}, nil
}

// String names the keys by their public halves; the private keys never
// reach a log or an error through fmt or slog.
func (k *Keys) String() string {
	return fmt.Sprintf("auditlog.Keys{ed25519: %s, mldsa65: %s}", k.verifier.vkey, k.verifier.mldsaKeyID)
}

// GoString is String, so %#v does not print the private keys either.
func (k *Keys) GoString() string { return k.String() }

// LogValue is String for log/slog.
func (k *Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Verifier returns the public half of k.
func (k *Keys) Verifier() *Verifier { return k.verifier }

// NoteVerifierKey is the C2SP note verifier key of the Ed25519 checkpoint key,
// "decision-fabric/audit+<key hash>+<base64>", as note.NewVerifier reads it.
func (v *Verifier) NoteVerifierKey() string { return v.vkey }

// NoteKeyHash is the 4-byte key hash that prefixes the Ed25519 note signature.
func (v *Verifier) NoteKeyHash() uint32 { return v.note.KeyHash() }

// MLDSAPublicKeyPEM is the ML-DSA-65 public key as a "PUBLIC KEY" PEM block
// (SubjectPublicKeyInfo, RFC 9881).
func (v *Verifier) MLDSAPublicKeyPEM() []byte { return append([]byte(nil), v.mldsaPEM...) }

// MLDSAPublicKey is the raw ML-DSA-65 public key (FIPS 204 encoding).
func (v *Verifier) MLDSAPublicKey() []byte { return v.mldsa.Bytes() }

// MLDSAKeyID is the lower-case hex SHA-256 of the ML-DSA-65 SubjectPublicKeyInfo
// DER, the same key id scheme as internal/signing uses for cosign keys.
func (v *Verifier) MLDSAKeyID() string { return v.mldsaKeyID }

// LoadKeys reads the private keys from their files (see Ed25519KeyFile and
// MLDSAKeyFile for the formats).
func LoadKeys(ed25519Path, mldsaPath string) (*Keys, error) {
	skey, err := os.ReadFile(ed25519Path)
	if err != nil {
		return nil, fmt.Errorf("auditlog: read checkpoint key: %w", err)
	}
	raw, err := os.ReadFile(mldsaPath)
	if err != nil {
		return nil, fmt.Errorf("auditlog: read checkpoint key: %w", err)
	}
	seed, err := parseMLDSAPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %s: %w", mldsaPath, err)
	}
	k, err := newKeys(strings.TrimSpace(string(skey)), seed)
	if err != nil {
		return nil, fmt.Errorf("auditlog: %s: %w", ed25519Path, err)
	}
	return k, nil
}

// keysMu serialises LoadOrCreateKeys within one process; across processes the
// exclusive publication of each file decides which key wins.
var keysMu sync.Mutex

// LoadOrCreateKeys returns the keys kept in dir (Ed25519KeyFile and
// MLDSAKeyFile), creating them on first use: dir 0700, private keys 0600,
// public keys 0644. Every later call, and every concurrent first call
// (goroutines or processes sharing dir), gets the same keys: a key file is
// published with a hard link only one creator can win. Existing files are
// never replaced. Use it in simulation; in production provision the keys
// (GenerateKeys, WriteFiles) and load them with LoadKeys.
func LoadOrCreateKeys(dir string) (*Keys, error) {
	keysMu.Lock()
	defer keysMu.Unlock()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	edPath, mlPath := filepath.Join(dir, Ed25519KeyFile), filepath.Join(dir, MLDSAKeyFile)
	if k, err := LoadKeys(edPath, mlPath); err == nil {
		return k, k.writePublic(dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	fresh, err := GenerateKeys()
	if err != nil {
		return nil, err
	}
	for path, data := range map[string][]byte{edPath: []byte(fresh.skey + "\n"), mlPath: fresh.mldsaPrivatePEM()} {
		if err := keyfile.CreateExclusive(path, data, privateKeyMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	k, err := LoadKeys(edPath, mlPath)
	if err != nil {
		return nil, err
	}
	if err := k.writePublic(dir); err != nil {
		return nil, err
	}
	return k, nil
}

// WriteFiles writes the four key files into dir (0700), failing if a private
// key file exists already.
func (k *Keys) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("auditlog: %w", err)
	}
	if err := keyfile.CreateExclusive(filepath.Join(dir, Ed25519KeyFile), []byte(k.skey+"\n"), privateKeyMode); err != nil {
		return err
	}
	if err := keyfile.CreateExclusive(filepath.Join(dir, MLDSAKeyFile), k.mldsaPrivatePEM(), privateKeyMode); err != nil {
		return err
	}
	return k.writePublic(dir)
}

func (k *Keys) writePublic(dir string) error {
	for name, data := range map[string][]byte{
		Ed25519PubFile: []byte(k.verifier.vkey + "\n"),
		MLDSAPubFile:   k.verifier.mldsaPEM,
	} {
		if err := keyfile.Ensure(filepath.Join(dir, name), data, publicKeyMode); err != nil {
			return err
		}
	}
	return nil
}

// pkcs8 is OneAsymmetricKey (RFC 5958) without the optional fields.
type pkcs8 struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

// mldsaPrivatePEM encodes the seed in the RFC 9881 "seed" form:
// privateKey = [0] IMPLICIT OCTET STRING (SIZE (32)).
func (k *Keys) mldsaPrivatePEM() []byte {
	inner := append([]byte{0x80, mldsa65.SeedSize}, k.mldsaSeed[:]...)
	der, err := asn1.Marshal(pkcs8{Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidMLDSA65}, PrivateKey: inner})
	if err != nil {
		panic(err) // fixed-shape structure: cannot fail
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func parseMLDSAPrivateKey(raw []byte) ([mldsa65.SeedSize]byte, error) {
	var seed [mldsa65.SeedSize]byte
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return seed, errors.New("not a PEM \"PRIVATE KEY\" block")
	}
	var k pkcs8
	if rest, err := asn1.Unmarshal(block.Bytes, &k); err != nil || len(rest) != 0 {
		return seed, errors.New("malformed PKCS #8 private key")
	}
	if !k.Algorithm.Algorithm.Equal(oidMLDSA65) {
		return seed, fmt.Errorf("private key algorithm %v is not ML-DSA-65", k.Algorithm.Algorithm)
	}
	if len(k.PrivateKey) != 2+mldsa65.SeedSize || k.PrivateKey[0] != 0x80 || k.PrivateKey[1] != mldsa65.SeedSize {
		return seed, errors.New("ML-DSA-65 private key is not in the 32-byte seed form")
	}
	copy(seed[:], k.PrivateKey[2:])
	return seed, nil
}

func marshalMLDSAPublicKey(pub *mldsa65.PublicKey) ([]byte, error) {
	raw := pub.Bytes()
	der, err := asn1.Marshal(spki{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidMLDSA65},
		PublicKey: asn1.BitString{Bytes: raw, BitLength: 8 * len(raw)},
	})
	if err != nil {
		return nil, fmt.Errorf("auditlog: encode ML-DSA-65 public key: %w", err)
	}
	return der, nil
}

func parseMLDSAPublicKey(raw []byte) (*mldsa65.PublicKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("auditlog: ML-DSA-65 public key: not a PEM \"PUBLIC KEY\" block")
	}
	var k spki
	if rest, err := asn1.Unmarshal(block.Bytes, &k); err != nil || len(rest) != 0 {
		return nil, errors.New("auditlog: ML-DSA-65 public key: malformed SubjectPublicKeyInfo")
	}
	if !k.Algorithm.Algorithm.Equal(oidMLDSA65) {
		return nil, fmt.Errorf("auditlog: public key algorithm %v is not ML-DSA-65", k.Algorithm.Algorithm)
	}
	var pub mldsa65.PublicKey
	if k.PublicKey.BitLength != 8*len(k.PublicKey.Bytes) {
		return nil, errors.New("auditlog: ML-DSA-65 public key: partial byte")
	}
	if err := pub.UnmarshalBinary(k.PublicKey.Bytes); err != nil {
		return nil, fmt.Errorf("auditlog: ML-DSA-65 public key: %w", err)
	}
	return &pub, nil
}
