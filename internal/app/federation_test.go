package app

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/regionkeys"
)

// With federation.enabled, the region key registry (what the coordinator checks
// certificates with and `fabric region-keys export` writes) is the federation
// registry's keys, not keys derived from the simulation seed.
func TestRegionRegistryOfAFederation(t *testing.T) {
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	raw, err := json.Marshal(map[string]any{"regions": []map[string]any{
		{"name": "eu-west", "endpoint": "127.0.0.1:9403", "public_key": regionkeys.PublicKeyPEM(pub)}}})
	require.NoError(t, err)
	regFile := filepath.Join(dir, "registry.json")
	require.NoError(t, os.WriteFile(regFile, raw, 0o600))

	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Federation = config.Federation{Enabled: true, RegistryFile: regFile}
	reg, err := RegionRegistry(cfg)
	require.NoError(t, err)
	require.Equal(t, []string{"eu-west"}, reg.Regions())
	got, ok := reg.Key("eu-west")
	require.True(t, ok)
	require.True(t, pub.Equal(got))

	cfg.Federation.RegistryFile = filepath.Join(dir, "missing.json")
	_, err = RegionRegistry(cfg)
	require.Error(t, err)
}
