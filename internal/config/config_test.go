package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	require.NoError(t, err)
	require.Equal(t, "all", c.Target)
	require.Equal(t, ":9201", c.Services["decision-coordinator"].HTTPAddr)
	require.Equal(t, "127.0.0.1:9307", c.Services["sim-canary"].DialAddr())
	require.EqualValues(t, 30000, c.DecisionTimeoutMS)
}

func TestYAMLIsStrictAndMerged(t *testing.T) {
	t.Parallel()
	c, err := Load(writeFile(t, "target: decision-coordinator\nservices:\n  decision-coordinator:\n    http_addr: \"127.0.0.1:19201\"\n"), nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:19201", c.Services["decision-coordinator"].HTTPAddr)
	require.Equal(t, ":9301", c.Services["decision-coordinator"].GRPCAddr, "unset fields keep their defaults")

	_, err = Load(writeFile(t, "targt: all\n"), nil)
	require.ErrorContains(t, err, "targt")
	_, err = Load(writeFile(t, "services:\n  nope:\n    http_addr: \":1\"\n"), nil)
	require.ErrorContains(t, err, `unknown service "nope"`)
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	c, err := Load("", env(map[string]string{
		"POSTGRES_DSN":                 "postgres://u:pw@h/db",
		"SIMULATION_MODE":              "true",
		"PHASE_I4_DECISION_TIMEOUT_MS": "1500",
		"FEDERATION_TOKEN":             "tok-123",
	}))
	require.NoError(t, err)
	require.Equal(t, "postgres://u:pw@h/db", c.Integrations.PostgresDSN.Reveal())
	require.Equal(t, "true", c.SimulationMode)
	require.EqualValues(t, 1500, c.DecisionTimeoutMS)

	printed := c.Redacted()
	require.NotContains(t, printed, "pw@h")
	require.NotContains(t, printed, "tok-123")
	require.Contains(t, printed, "<REDACTED>")
}

func TestValidationErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		yaml string
		env  map[string]string
		want string
	}{
		"bad target":     {yaml: "target: everything\n", want: "target"},
		"bad timeout":    {env: map[string]string{"PHASE_I4_DECISION_TIMEOUT_MS": "soon"}, want: "PHASE_I4_DECISION_TIMEOUT_MS"},
		"bad simulation": {env: map[string]string{"SIMULATION_MODE": "maybe"}, want: "simulation_mode"},
		"bad addr":       {yaml: "services:\n  hil-gateway:\n    http_addr: nope\n", want: "services.hil-gateway.http_addr"},
		"port clash":     {yaml: "services:\n  hil-gateway:\n    http_addr: \":9201\"\n", want: "also used by"},
		"bad log level":  {yaml: "telemetry:\n  log_level: loud\n", want: "telemetry.log_level"},
		"tiny body":      {yaml: "max_request_bytes: 10\n", want: "max_request_bytes"},
		"gc off":         {yaml: "gc_percent: -1\n", want: "gc_percent"},
		"gc too lazy":    {yaml: "gc_percent: 5000\n", want: "gc_percent"},
		"bad duration":   {yaml: "shutdown_timeout: forever\n", want: "line 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tc.yaml != "" {
				path = writeFile(t, tc.yaml)
			}
			_, err := Load(path, env(tc.env))
			require.Error(t, err)
			require.True(t, strings.Contains(err.Error(), tc.want), "%v should mention %q", err, tc.want)
		})
	}
}

// decision_timeout_ms is refused past the policy's bound, instead of being silently
// replaced by the default later.
func TestDecisionTimeoutBound(t *testing.T) {
	c := Default()
	c.DecisionTimeoutMS = 600000
	require.NoError(t, c.Validate())
	c.DecisionTimeoutMS = 600001
	require.ErrorContains(t, c.Validate(), "decision_timeout_ms")
}

func TestWebAuthnValidation(t *testing.T) {
	t.Parallel()
	require.False(t, Default().HIL.WebAuthn.Enabled(), "off by default")
	ok := []WebAuthn{
		{},
		{RPID: "approvals.example", RPOrigins: []string{"https://approvals.example"}},
		{RPID: "example.com", RPDisplayName: "Ops approvals", RPOrigins: []string{"https://approvals.example.com:8443", "https://example.com/"}},
		{RPID: "localhost", RPOrigins: []string{"http://localhost:9205", "https://localhost"}},
	}
	for _, w := range ok {
		require.NoError(t, w.Validate(), "%+v", w)
	}
	bad := map[string]WebAuthn{
		"origins without rp_id":    {RPOrigins: []string{"https://approvals.example"}},
		"display name alone":       {RPDisplayName: "x"},
		"rp_id without origins":    {RPID: "approvals.example"},
		"rp_id a URL":              {RPID: "https://approvals.example", RPOrigins: []string{"https://approvals.example"}},
		"rp_id with a port":        {RPID: "approvals.example:443", RPOrigins: []string{"https://approvals.example"}},
		"rp_id an IP":              {RPID: "10.0.0.1", RPOrigins: []string{"https://10.0.0.1"}},
		"rp_id upper case":         {RPID: "Approvals.example", RPOrigins: []string{"https://approvals.example"}},
		"rp_id empty label":        {RPID: "approvals..example", RPOrigins: []string{"https://approvals.example"}},
		"plain http":               {RPID: "approvals.example", RPOrigins: []string{"http://approvals.example"}},
		"http on a loopback IP":    {RPID: "localhost", RPOrigins: []string{"http://127.0.0.1:9205"}},
		"relative":                 {RPID: "approvals.example", RPOrigins: []string{"approvals.example"}},
		"with a path":              {RPID: "approvals.example", RPOrigins: []string{"https://approvals.example/ui"}},
		"with a query":             {RPID: "approvals.example", RPOrigins: []string{"https://approvals.example?x=1"}},
		"with a user":              {RPID: "approvals.example", RPOrigins: []string{"https://u@approvals.example"}},
		"another site":             {RPID: "approvals.example", RPOrigins: []string{"https://evil.example"}},
		"suffix is not subdomain":  {RPID: "approvals.example", RPOrigins: []string{"https://notapprovals.example"}},
		"other scheme":             {RPID: "approvals.example", RPOrigins: []string{"ftp://approvals.example"}},
		"display name too long":    {RPID: "approvals.example", RPDisplayName: strings.Repeat("x", 65), RPOrigins: []string{"https://approvals.example"}},
		"one good, one bad origin": {RPID: "approvals.example", RPOrigins: []string{"https://approvals.example", "http://approvals.example"}},
	}
	for name, w := range bad {
		err := w.Validate()
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "hil.webauthn.", name)
	}

	// Through Load: the file's keys, and the error names the key.
	c, err := Load(writeFile(t, "hil:\n  webauthn:\n    rp_id: approvals.example\n    rp_origins: [\"https://approvals.example\"]\n"), env(nil))
	require.NoError(t, err)
	require.True(t, c.HIL.WebAuthn.Enabled())
	require.Equal(t, []string{"https://approvals.example"}, c.HIL.WebAuthn.RPOrigins)
	_, err = Load(writeFile(t, "hil:\n  webauthn:\n    rp_id: approvals.example\n    rp_origins: [\"http://approvals.example\"]\n"), env(nil))
	require.ErrorContains(t, err, "hil.webauthn.rp_origins")
	_, err = Load(writeFile(t, "hil:\n  webauthn:\n    rp_idd: approvals.example\n"), env(nil))
	require.Error(t, err, "unknown keys are errors")
}

func TestVaultKeyPathsNeedVaultAndOnePlace(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Integrations.Vault.ServiceKeyPath = "fabric/service-key"
	require.ErrorContains(t, c.Validate(), "integrations.vault_addr (VAULT_ADDR) is not")
	c.Integrations.VaultAddr = "https://vault.example:8200"
	require.NoError(t, c.Validate())
	c.Auth.ServiceKeyFile = "/etc/fabric/service.pem"
	require.ErrorContains(t, c.Validate(), "integrations.vault.service_key_path and auth.service_key_file are both set")
	c.Auth.ServiceKeyFile = ""
	c.Integrations.Vault.CosignKeyPath = "fabric/cosign"
	c.Integrations.CosignKeyPath = "/k"
	require.ErrorContains(t, c.Validate(), "cosign_key_path (COSIGN_KEY_PATH)")
	c.Integrations.CosignKeyPath = ""
	c.Integrations.Vault.MFAKeyPath = "fabric/mfa"
	c.HIL.MFAKeyFile = "/m"
	require.ErrorContains(t, c.Validate(), "hil.mfa_key_file")
}
