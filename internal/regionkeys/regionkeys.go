// Package regionkeys is the one home of the regions' vote keys: the Ed25519 keys each
// region signs its votes with (internal/quorum.VotePayload), and the registry of their
// public keys that everyone who checks a quorum certificate trusts.
//
// The negotiator signs with the private keys (in simulation derived from one seed kept
// in the data folder, see Derive and LoadOrCreateSeed) and checks that its regions'
// keys are the registry's; the coordinator verifies every quorum certificate against
// the registry before it packages or enacts a decision; the offline verifier
// (`fabric decision verify -region-keys DIR`) reads the same registry from a folder.
//
// A registry comes from one of two places:
//
//   - a folder of public keys, one file per region named "<region>.pub" holding a PEM
//     "PUBLIC KEY" (PKIX) Ed25519 key: LoadDir. This is what a real deployment
//     configures (`region_keys_dir`), with keys the regions publish out of band;
//   - in simulation, the seed in the data folder: FromSeed derives each configured
//     region's key exactly as the simulated agents do.
//
// `fabric region-keys export -out DIR` writes a registry as such a folder.
package regionkeys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/keyfile"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// SeedSize is the length of the region key seed in bytes.
const SeedSize = 32

// FileSuffix ends every public key file of a registry folder: "<region>.pub".
const FileSuffix = ".pub"

// Limits of a registry folder.
const (
	maxKeyFileBytes = 16 << 10
	maxRegions      = 1024
)

// reRegion is a region name.
var reRegion = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// ValidRegion reports whether name is a region name: 1-64 of a-z 0-9 -, starting with a
// letter or digit. It is the one rule for regions in manifests, regions.yaml, templates
// and key registries.
func ValidRegion(name string) bool { return reRegion.MatchString(name) }

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
		return nil, fmt.Errorf("regionkeys: seed: %w", err)
	}
	seed := make([]byte, SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("regionkeys: seed: %w", err)
	}
	// Published whole (keyfile.CreateExclusive): a concurrent loser reads the winner's
	// complete seed, and a crash never leaves an empty one.
	err := keyfile.CreateExclusive(path, []byte(hex.EncodeToString(seed)+"\n"), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readSeed(path)
	}
	if err != nil {
		return nil, fmt.Errorf("regionkeys: seed: %w", err)
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
		return nil, fmt.Errorf("regionkeys: %s: want %d hex-encoded bytes", path, SeedSize)
	}
	return seed, nil
}

// Derive derives a region's Ed25519 key from the seed (HKDF-SHA256, the region
// name in the info string): the same seed and region always give the same key,
// and one region's key says nothing about another's.
func Derive(seed []byte, region string) (ed25519.PrivateKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("regionkeys: region key seed: want %d bytes, got %d", SeedSize, len(seed))
	}
	k, err := hkdf.Key(sha256.New, seed, nil, "decision-fabric/negotiator/region-key/v1/"+region, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("regionkeys: region key: %w", err)
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
		return nil, errors.New("regionkeys: want a PEM \"PUBLIC KEY\" block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("regionkeys: public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("regionkeys: public key is not Ed25519")
	}
	return pub, nil
}

// Registry maps region names to the public keys that verify their votes. It is
// immutable once built and safe for concurrent use.
type Registry struct {
	keys map[string]ed25519.PublicKey
}

// New builds a registry from region -> public key. Region names must be valid
// ([a-z0-9-], 1-64 characters) and keys Ed25519.
func New(keys map[string]ed25519.PublicKey) (*Registry, error) {
	r := &Registry{keys: make(map[string]ed25519.PublicKey, len(keys))}
	for name, pub := range keys {
		if !reRegion.MatchString(name) {
			return nil, fmt.Errorf("regionkeys: region %q: want 1-64 of [a-z0-9-]", name)
		}
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("regionkeys: region %q: not an Ed25519 public key", name)
		}
		r.keys[name] = slices.Clone(pub)
	}
	return r, nil
}

// FromSeed is the simulation registry: the keys Derive gives each region.
func FromSeed(seed []byte, regions []string) (*Registry, error) {
	keys := make(map[string]ed25519.PublicKey, len(regions))
	for _, name := range regions {
		k, err := Derive(seed, name)
		if err != nil {
			return nil, err
		}
		keys[name] = k.Public().(ed25519.PublicKey)
	}
	return New(keys)
}

// LoadDir reads a registry folder: every "<region>.pub" file in dir (a PEM
// "PUBLIC KEY" Ed25519 key; other files are ignored). A folder without any key
// file is an error, so a typo in the path is not an empty registry.
func LoadDir(dir string) (*Registry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("regionkeys: %w", err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), FileSuffix)
		if !ok || e.IsDir() {
			continue
		}
		if !reRegion.MatchString(name) {
			return nil, fmt.Errorf("regionkeys: %s: %q is not a region name (want 1-64 of [a-z0-9-])", filepath.Join(dir, e.Name()), name)
		}
		if len(keys) == maxRegions {
			return nil, fmt.Errorf("regionkeys: %s: more than %d key files", dir, maxRegions)
		}
		path := filepath.Join(dir, e.Name())
		raw, err := readBounded(path)
		if err != nil {
			return nil, err
		}
		pub, err := ParsePublicKeyPEM(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, path)
		}
		keys[name] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("regionkeys: %s holds no <region>%s key file", dir, FileSuffix)
	}
	return New(keys)
}

func readBounded(path string) ([]byte, error) {
	raw, err := config.ReadBounded(path, maxKeyFileBytes, "regionkeys: "+path)
	if err != nil {
		return nil, err
	}
	if len(raw) > maxKeyFileBytes {
		return nil, fmt.Errorf("regionkeys: %s: larger than %d bytes", path, maxKeyFileBytes)
	}
	return raw, nil
}

// WriteDir writes the registry as a folder LoadDir reads: "<region>.pub" per
// region (mode 0644; dir created 0755). Existing files of the same name are
// replaced.
func (r *Registry) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("regionkeys: %w", err)
	}
	for _, name := range r.Regions() {
		if err := os.WriteFile(filepath.Join(dir, name+FileSuffix), []byte(PublicKeyPEM(r.keys[name])), 0o644); err != nil {
			return fmt.Errorf("regionkeys: %w", err)
		}
	}
	return nil
}

// Key returns a region's public key.
func (r *Registry) Key(region string) (ed25519.PublicKey, bool) {
	k, ok := r.keys[region]
	return k, ok
}

// Regions lists the registry's regions, sorted.
func (r *Registry) Regions() []string {
	out := make([]string, 0, len(r.keys))
	for name := range r.keys {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Trusted returns region -> PEM "PUBLIC KEY", the trusted keys
// internal/quorum.Verify takes. The map is a fresh copy.
func (r *Registry) Trusted() map[string][]byte {
	out := make(map[string][]byte, len(r.keys))
	for name, k := range r.keys {
		out[name] = []byte(PublicKeyPEM(k))
	}
	return out
}

// Check reports whether pub is the registry's key for region, with an error
// saying why not.
func (r *Registry) Check(region string, pub ed25519.PublicKey) error {
	want, ok := r.keys[region]
	switch {
	case !ok:
		return fmt.Errorf("regionkeys: region %q has no key in the registry", region)
	case !bytes.Equal(want, pub):
		return fmt.Errorf("regionkeys: region %q signs with key %s, but the registry trusts %s", region, KeyID(pub), KeyID(want))
	}
	return nil
}
