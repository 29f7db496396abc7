package negotiator

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	qc "github.com/decision-fabric/fabric/internal/quorum"
)

// Vote signing. Every vote is an Ed25519 signature by its region's key over
// the RFC 8785 canonical JSON of
//
//	{"proposal_digest":"<hex>","region":"<name>","round":<n>,"verdict":"ACCEPT"}
//
// (verdict without its VERDICT_ prefix). Simulated regions derive their keys
// from one seed, so a restarted fabric signs with the same keys; each
// negotiation also stores the public keys it was signed with, so a verifier
// can check its votes later without the seed.

// SeedSize is the length of the region key seed in bytes.
const SeedSize = 32

// SeedPath is where LoadOrCreateSeed keeps the seed inside the data folder.
func SeedPath(dataDir string) string {
	return filepath.Join(dataDir, "keys", "negotiator-region-seed.hex")
}

// LoadOrCreateSeed returns the region key seed from the data folder, creating
// it (random, mode 0600, folder 0700) on first use. Concurrent first starts
// agree on one seed: the file is created exclusively and a loser re-reads it.
func LoadOrCreateSeed(dataDir string) ([]byte, error) {
	path := SeedPath(dataDir)
	if seed, err := readSeed(path); err == nil {
		return seed, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("negotiator: seed: %w", err)
	}
	seed := make([]byte, SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("negotiator: seed: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return readSeed(path)
	}
	if err != nil {
		return nil, fmt.Errorf("negotiator: seed: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(seed) + "\n"); err != nil {
		return nil, fmt.Errorf("negotiator: write seed: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("negotiator: write seed: %w", err)
	}
	return seed, nil
}

func readSeed(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(seed) != SeedSize {
		// A file being written by a concurrent first start is empty for a moment.
		return nil, fmt.Errorf("negotiator: %s: want %d hex-encoded bytes", path, SeedSize)
	}
	return seed, nil
}

// RegionKey derives a region's Ed25519 key from the seed (HKDF-SHA256, the
// region name in the info string): the same seed and region always give the
// same key, and one region's key says nothing about another's.
func RegionKey(seed []byte, region string) (ed25519.PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("negotiator: region key seed: want %d bytes, got %d", SeedSize, len(seed))
	}
	k, err := hkdf.Key(sha256.New, seed, nil, "decision-fabric/negotiator/region-key/v1/"+region, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("negotiator: region key: %w", err)
	}
	return ed25519.NewKeyFromSeed(k), nil
}

// KeyID is the lower-case hex SHA256 of the key's DER (PKIX) encoding, the same
// convention as types.v1.ManifestSignature.key_id.
func KeyID(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // only for a malformed key
		return ""
	}
	return canonical.SHA256Hex(der)
}

// PublicKeyPEM encodes pub as a PEM "PUBLIC KEY" block.
func PublicKeyPEM(pub ed25519.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// ParsePublicKeyPEM decodes a PEM "PUBLIC KEY" block holding an Ed25519 key.
func ParsePublicKeyPEM(s string) (ed25519.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("negotiator: want a PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("negotiator: public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("negotiator: public key is not Ed25519")
	}
	return pub, nil
}

// VotePayload is the canonical JSON a vote's signature covers (internal/quorum.VotePayload,
// the one definition a certificate verifier also uses).
func VotePayload(proposalDigest string, round int32, region string, verdict negotiatorv1.Verdict) ([]byte, error) {
	return qc.VotePayload(proposalDigest, round, region, verdictName(verdict))
}

// SignVote signs a vote's payload and returns the base64 signature.
func SignVote(key ed25519.PrivateKey, proposalDigest string, round int32, region string, verdict negotiatorv1.Verdict) (string, error) {
	payload, err := VotePayload(proposalDigest, round, region, verdict)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, payload)), nil
}

// ErrBadSignature: a vote's signature does not verify with its region's key.
var ErrBadSignature = errors.New("negotiator: vote signature does not verify")

// VerifyVote checks a vote's signature with the region's public key.
func VerifyVote(pub ed25519.PublicKey, proposalDigest string, round int32, region string, verdict negotiatorv1.Verdict, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", ErrBadSignature)
	}
	payload, err := VotePayload(proposalDigest, round, region, verdict)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, payload, sig) {
		return ErrBadSignature
	}
	return nil
}

// verdictName is the stored and signed form of a verdict ("ACCEPT").
func verdictName(v negotiatorv1.Verdict) string {
	return strings.TrimPrefix(v.String(), "VERDICT_")
}

// parseVerdict parses the stored form; unknown names are VERDICT_UNSPECIFIED.
func parseVerdict(s string) negotiatorv1.Verdict {
	return negotiatorv1.Verdict(negotiatorv1.Verdict_value["VERDICT_"+s])
}
