package precheck

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/vault/vaulttest"
)

// A signing key kept in Vault is read by the precheck, with the fabric's Vault token,
// and accepted like COSIGN_KEY_PATH. Without VAULT_ADDR the Vault path means nothing
// and COSIGN_KEY_PATH is missing; without a token it is unverified, never ok.
func TestRunCosignKeyInVault(t *testing.T) {
	t.Parallel()
	const token = "hvs.precheck-token-never-reported"
	srv := vaulttest.New(t, token, "kv")
	good, err := os.ReadFile(cosignKeyFile(t))
	require.NoError(t, err)
	srv.Put("fabric/cosign", map[string]any{"key": string(good), "password": "pw"})
	run := func(env Env) Check {
		t.Helper()
		r := Run(context.Background(), env, Options{Timeout: 5 * time.Second})
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		require.NotContains(t, string(raw), token, "the Vault token is never reported")
		require.NotContains(t, string(raw), string(good[40:80]), "nor the key")
		c := checkByName(t, r, CheckCosign)
		require.True(t, c.Critical)
		return c
	}

	c := run(Env{CosignVaultPath: "fabric/cosign"})
	require.Equal(t, StatusMissing, c.Status)

	env := Env{VaultAddr: srv.URL, CosignVaultPath: "fabric/cosign", VaultToken: token, VaultKVMount: "kv"}
	c = run(env)
	require.Equal(t, StatusOK, c.Status, c.Detail)
	require.Equal(t, "vault:kv/fabric/cosign", c.Target)
	require.Contains(t, c.Detail, "ENCRYPTED SIGSTORE PRIVATE KEY")

	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	c = run(Env{VaultAddr: srv.URL, CosignVaultPath: "fabric/cosign", VaultTokenFile: tokenFile, VaultKVMount: "kv"})
	require.Equal(t, StatusOK, c.Status, c.Detail)
}

// The attacker's view: a Vault secret that is not a usable key, is absent, or cannot
// be read with the fabric's token used to pass the precheck as ok (PROCEED, and the
// start failing later, or worse a bad key in production). Each is now a failed
// critical check; SIMULATION_MODE=false blocks. No Vault token: unverified, not ok.
func TestRunCosignKeyInVaultRefusesWhatItCannotAccept(t *testing.T) {
	t.Parallel()
	const token = "hvs.precheck-token-never-reported"
	srv := vaulttest.New(t, token, "secret")
	srv.Put("fabric/garbage", map[string]any{"key": "not a key at all: hunter2"})
	srv.Put("fabric/corrupt", map[string]any{"key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")}))})
	srv.Put("fabric/nokey", map[string]any{"password": "pw"})
	srv.Put("fabric/cosign", map[string]any{"key": string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("k")}))})

	for name, tc := range map[string]struct {
		env  Env
		want Status
	}{
		"garbage":     {Env{CosignVaultPath: "fabric/garbage", VaultToken: token}, StatusInvalid},
		"corrupt":     {Env{CosignVaultPath: "fabric/corrupt", VaultToken: token}, StatusInvalid},
		"no key":      {Env{CosignVaultPath: "fabric/nokey", VaultToken: token}, StatusInvalid},
		"absent":      {Env{CosignVaultPath: "fabric/absent", VaultToken: token}, StatusInvalid},
		"wrong token": {Env{CosignVaultPath: "fabric/cosign", VaultToken: "hvs.wrong-token-never-reported"}, StatusInvalid},
		"token file":  {Env{CosignVaultPath: "fabric/cosign", VaultTokenFile: filepath.Join(t.TempDir(), "absent")}, StatusInvalid},
		"no token":    {Env{CosignVaultPath: "fabric/cosign"}, StatusUnverified},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := tc.env
			env.VaultAddr = srv.URL
			env.SimulationMode = "false"
			r := Run(context.Background(), env, Options{Timeout: 5 * time.Second})
			c := checkByName(t, r, CheckCosign)
			require.Equal(t, tc.want, c.Status, c.Detail)
			require.True(t, c.Critical)
			require.Equal(t, Block, r.Decision)
			require.Contains(t, strings.Join(r.Reasons, "\n"), fmt.Sprintf("%s (%s)", EnvCosignKeyPath, tc.want),
				"production with an unusable or unchecked signing key is blocked for it")
			raw, err := json.Marshal(r)
			require.NoError(t, err)
			for _, secret := range []string{token, "hvs.wrong-token-never-reported", "hunter2"} {
				require.NotContains(t, string(raw), secret)
			}
		})
	}
}
