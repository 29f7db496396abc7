package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/precheck"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/testredis"
	"github.com/decision-fabric/fabric/internal/vault/vaulttest"
)

const testVaultToken = "hvs.app-test-token"

// The service key and the MFA key come from Vault (KV v2) when integrations.vault
// names them, the tenants' quotas go through Redis with REDIS_URL, and GET /health
// reports both components.
func TestKeysFromVaultAndQuotasInRedis(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	require.NoError(t, err)
	mfaKey := make([]byte, 32)
	_, _ = rand.Read(mfaKey)
	v := vaulttest.New(t, testVaultToken, "kv")
	v.Put("fabric/service-key", map[string]any{"key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	v.Put("fabric/mfa", map[string]any{"key": base64.StdEncoding.EncodeToString(mfaKey)})

	cfg := config.Default()
	cfg.Target = fabric.Scorer
	cfg.DataDir, cfg.ReportsDir = t.TempDir(), t.TempDir()
	cfg.SimulationMode = "true"
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(testVaultToken+"\n"), 0o600))
	cfg.Integrations.VaultAddr = v.URL
	cfg.Integrations.Vault = config.VaultKeys{TokenFile: tokenFile, KVMount: "kv",
		ServiceKeyPath: "fabric/service-key", MFAKeyPath: "fabric/mfa"}
	cfg.Integrations.RedisURL = config.Secret("redis://" + addr + "/0")
	ephemeralPorts(cfg)
	r, err := Start(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Stop()) }()

	// The service signer holds Vault's key: its tokens verify against that key alone.
	require.NotNil(t, r.App.ServiceSigner)
	tok, err := r.App.ServiceSigner.Mint("fabric:test", "t1", []string{auth.RoleService}, time.Minute)
	require.NoError(t, err)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	verifier, err := auth.NewVerifier(other, cfg.Auth.Issuer, cfg.Auth.Audience)
	require.NoError(t, err)
	verifier.TrustServiceKey(pub)
	p, err := verifier.Verify(tok)
	require.NoError(t, err, "the service key in use is the one in Vault")
	require.Equal(t, []string{auth.RoleService}, p.Roles)

	got, err := r.App.mfaKey()
	require.NoError(t, err)
	require.Equal(t, mfaKey, got)
	_, err = os.Stat(filepath.Join(cfg.DataDir, "keys", "mfa.key"))
	require.ErrorIs(t, err, os.ErrNotExist, "no key file was made: the key is Vault's")

	resp, err := http.Get("http://" + r.Servers[fabric.Scorer].HTTPAddr() + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var rep server.HealthReport
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rep))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ok", rep.Checks["vault"])
	require.Equal(t, "ok", rep.Checks["redis"])
	require.Equal(t, "ok", rep.Status)
}

// A wrong Vault token stops the start (fail closed) with an error that names the
// path and Vault's answer, never the token.
func TestWrongVaultTokenRefusesToStart(t *testing.T) {
	t.Parallel()
	v := vaulttest.New(t, testVaultToken, "secret")
	v.Put("fabric/service-key", map[string]any{"key": "x"})
	cfg := config.Default()
	cfg.Target = fabric.Scorer
	cfg.DataDir, cfg.ReportsDir = t.TempDir(), t.TempDir()
	cfg.SimulationMode = "true"
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("hvs.not-the-right-one"), 0o600))
	cfg.Integrations.VaultAddr = v.URL
	cfg.Integrations.Vault = config.VaultKeys{TokenFile: tokenFile, ServiceKeyPath: "fabric/service-key"}
	ephemeralPorts(cfg)
	_, err := Start(context.Background(), cfg, io.Discard)
	require.ErrorContains(t, err, "secret/fabric/service-key: HTTP 403")
	require.NotContains(t, err.Error(), "hvs.not-the-right-one")
}

// The cosign signing key and its password come from Vault outside simulation.
func TestCosignKeyFromVault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	password := []byte("cosign-pw-in-vault")
	want, err := signing.GenerateCosignKey(dir, password)
	require.NoError(t, err)
	keyPEM, err := os.ReadFile(filepath.Join(dir, signing.CosignKeyFile))
	require.NoError(t, err)
	v := vaulttest.New(t, testVaultToken, "secret")
	v.Put("fabric/cosign", map[string]any{"key": string(keyPEM), "password": string(password)})
	v.Put("fabric/cosign-badpw", map[string]any{"key": string(keyPEM), "password": "badpw-zz-secret"})

	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(testVaultToken), 0o600))
	cfg := config.Default()
	cfg.Integrations.VaultAddr = v.URL
	cfg.Integrations.Vault = config.VaultKeys{TokenFile: tokenFile, CosignKeyPath: "fabric/cosign"}
	a := &App{Cfg: cfg, Log: slog.New(slog.DiscardHandler)}
	got, err := a.manifestSigner()
	require.NoError(t, err)
	require.Equal(t, want.KeyID(), got.KeyID(), "the signing key in use is Vault's")
	require.Equal(t, want.PublicKeyPEM(), got.PublicKeyPEM())

	_, err = a.vaultCosignKey("fabric/cosign-badpw")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "badpw-zz-secret")
	require.NotContains(t, err.Error(), "PRIVATE KEY")

	// The precheck reads it as the fabric does (token file, mount) and accepts it; a
	// path holding no key fails its critical cosign check.
	cosignCheck := func(cfg config.Config) precheck.Check {
		rep := precheck.Run(context.Background(), PrecheckEnv(cfg), precheck.Options{Timeout: 5 * time.Second})
		for _, c := range rep.Checks {
			if c.Name == precheck.CheckCosign {
				return c
			}
		}
		t.Fatal("no cosign check")
		return precheck.Check{}
	}
	c := cosignCheck(cfg)
	require.Equal(t, precheck.StatusOK, c.Status, c.Detail)
	cfg.Integrations.Vault.CosignKeyPath = "fabric/absent"
	c = cosignCheck(cfg)
	require.Equal(t, precheck.StatusInvalid, c.Status, c.Detail)
	require.NotContains(t, c.Detail, testVaultToken)
}
