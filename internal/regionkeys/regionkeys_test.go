package regionkeys_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/regionkeys"
)

var testSeed = bytes.Repeat([]byte{7}, regionkeys.SeedSize)

func TestRegionKeys(t *testing.T) {
	t.Parallel()
	k1, err := regionkeys.Derive(testSeed, "eu-west")
	require.NoError(t, err)
	k2, err := regionkeys.Derive(testSeed, "eu-west")
	require.NoError(t, err)
	require.Equal(t, k1, k2, "deterministic per seed and region")
	other, err := regionkeys.Derive(testSeed, "us-east")
	require.NoError(t, err)
	require.NotEqual(t, k1, other)
	_, err = regionkeys.Derive([]byte("short"), "eu-west")
	require.Error(t, err)

	pub := k1.Public().(ed25519.PublicKey)
	parsed, err := regionkeys.ParsePublicKeyPEM(regionkeys.PublicKeyPEM(pub))
	require.NoError(t, err)
	require.True(t, pub.Equal(parsed))
	require.Len(t, regionkeys.KeyID(parsed), 64)
	_, err = regionkeys.ParsePublicKeyPEM("not pem")
	require.Error(t, err)
}

func TestLoadOrCreateSeed(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	var wg sync.WaitGroup
	seeds := make([][]byte, 16)
	errs := make([]error, 16)
	for i := range seeds {
		wg.Go(func() { seeds[i], errs[i] = regionkeys.LoadOrCreateSeed(dir) })
	}
	wg.Wait()
	for i := range seeds {
		require.NoError(t, errs[i], "a loser reads the winner's whole seed")
		require.Equal(t, seeds[0], seeds[i], "concurrent first starts agree on one seed")
	}
	require.Len(t, seeds[0], regionkeys.SeedSize)
	info, err := os.Stat(regionkeys.SeedPath(dir))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	again, err := regionkeys.LoadOrCreateSeed(dir)
	require.NoError(t, err)
	require.Equal(t, seeds[0], again, "the seed survives restarts")

	require.NoError(t, os.WriteFile(regionkeys.SeedPath(dir), []byte("zz"), 0o600))
	_, err = regionkeys.LoadOrCreateSeed(dir)
	require.Error(t, err, "a corrupt seed is an error, never silently replaced")
}

// The seed registry holds exactly the keys the simulated agents derive, and a
// folder written from it loads back to the same registry.
func TestRegistryFromSeedAndDir(t *testing.T) {
	t.Parallel()
	r, err := regionkeys.FromSeed(testSeed, []string{"eu-west", "us-east"})
	require.NoError(t, err)
	require.Equal(t, []string{"eu-west", "us-east"}, r.Regions())
	k, err := regionkeys.Derive(testSeed, "eu-west")
	require.NoError(t, err)
	require.NoError(t, r.Check("eu-west", k.Public().(ed25519.PublicKey)))
	other, err := regionkeys.Derive(testSeed, "us-east")
	require.NoError(t, err)
	require.ErrorContains(t, r.Check("eu-west", other.Public().(ed25519.PublicKey)), "registry trusts")
	require.ErrorContains(t, r.Check("ap-south", other.Public().(ed25519.PublicKey)), "no key")

	dir := filepath.Join(t.TempDir(), "region-keys")
	require.NoError(t, r.WriteDir(dir))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), []byte("ignored"), 0o600))
	loaded, err := regionkeys.LoadDir(dir)
	require.NoError(t, err)
	require.Equal(t, r.Trusted(), loaded.Trusted())
	pem := r.Trusted()["eu-west"]
	require.Equal(t, regionkeys.PublicKeyPEM(k.Public().(ed25519.PublicKey)), string(pem))
}

func TestLoadDirErrors(t *testing.T) {
	t.Parallel()
	_, err := regionkeys.LoadDir(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)

	empty := t.TempDir()
	_, err = regionkeys.LoadDir(empty)
	require.ErrorContains(t, err, "no <region>.pub key file", "a folder without keys is not an empty registry")

	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "eu-west.pub"), []byte("not a key"), 0o600))
	_, err = regionkeys.LoadDir(bad)
	require.ErrorContains(t, err, "eu-west.pub")

	badName := t.TempDir()
	k, err := regionkeys.Derive(testSeed, "x")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(badName, "EU_WEST.pub"), []byte(regionkeys.PublicKeyPEM(k.Public().(ed25519.PublicKey))), 0o600))
	_, err = regionkeys.LoadDir(badName)
	require.ErrorContains(t, err, "not a region name")

	_, err = regionkeys.New(map[string]ed25519.PublicKey{"eu-west": {1, 2}})
	require.Error(t, err)
}
