package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// The attacker on the network between regions: a production coordinator whose
// registry names a remote region, without federation.tls, would send
// FEDERATION_TOKEN in cleartext; it refuses to start. federation.allow_insecure
// starts it with one warning (never the token); simulation and TLS are unchanged.
func TestFederationRefusesCleartextTokenInProduction(t *testing.T) {
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	raw, err := json.Marshal(map[string]any{"regions": []map[string]any{
		{"name": "eu-west", "endpoint": "10.0.0.7:9403", "public_key": regionkeys.PublicKeyPEM(pub)}}})
	require.NoError(t, err)
	regFile := filepath.Join(dir, "registry.json")
	require.NoError(t, os.WriteFile(regFile, raw, 0o600))
	const token = "federation-token-0123456789abcdef"

	newApp := func(simulation bool, mut func(f *config.Federation)) (*App, *bytes.Buffer) {
		cfg := config.Default()
		cfg.DataDir = filepath.Join(dir, "data")
		cfg.Integrations.FederationToken = config.Secret(token)
		cfg.Federation = config.Federation{Enabled: true, RegistryFile: regFile}
		mut(&cfg.Federation)
		var logs bytes.Buffer
		return &App{Cfg: cfg, Simulation: simulation, Log: slog.New(slog.NewJSONHandler(&logs, nil))}, &logs
	}
	ctx := context.Background()

	a, _ := newApp(false, func(*config.Federation) {})
	err = a.checkFederationTransport(ctx)
	require.ErrorContains(t, err, "10.0.0.7:9403")
	require.ErrorContains(t, err, "set federation.tls")
	require.NotContains(t, err.Error(), token)
	_, err = a.negotiatorFederation(ctx)
	require.ErrorContains(t, err, "set federation.tls", "the coordinator's dial options are refused too")

	// A region listening on every interface is refused the same way.
	a, _ = newApp(false, func(f *config.Federation) {
		f.Enabled = false
		f.Region = config.FederationRegion{Name: "eu-west", KeyFile: "k", GRPCAddr: ":9403"}
	})
	require.ErrorContains(t, a.checkFederationTransport(ctx), "set federation.tls")

	a, logs := newApp(false, func(f *config.Federation) { f.AllowInsecure = true })
	require.NoError(t, a.checkFederationTransport(ctx))
	require.NoError(t, a.checkFederationTransport(ctx))
	require.Equal(t, 1, strings.Count(logs.String(), "allow_insecure"), logs.String())
	require.Contains(t, logs.String(), `"level":"WARN"`)
	require.Contains(t, logs.String(), "10.0.0.7:9403")
	require.NotContains(t, logs.String(), token)

	a, logs = newApp(true, func(*config.Federation) {})
	require.NoError(t, a.checkFederationTransport(ctx), "simulation keeps today's behaviour")
	require.Empty(t, logs.String())

	a, _ = newApp(false, func(f *config.Federation) {
		f.TLS = config.FederationTLS{CertFile: "c", KeyFile: "k", CAFile: "ca"}
	})
	require.NoError(t, a.checkFederationTransport(ctx))
}
