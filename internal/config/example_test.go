package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/fabric"
)

// The committed services/<name>/config.example.yaml are exactly what config.Example
// generates (make generate), and each loads strictly to the defaults for its service:
// "the values shown are the defaults" stays true.
func TestExamplesAreGeneratedAndLoad(t *testing.T) {
	t.Parallel()
	for _, name := range fabric.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := Example(name)
			require.NoError(t, err)
			path := filepath.Join("..", "..", "services", name, "config.example.yaml")
			have, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(want), string(have), "stale: run go run ./internal/config/cmd/genexamples (make generate)")

			c, err := Load(path, func(string) (string, bool) { return "", false })
			require.NoError(t, err)
			def := Default()
			def.Target = name
			// "trusted_keys: []" and "executors: {}" load as empty, not nil: the same.
			require.Empty(t, c.TrustedKeys)
			require.Empty(t, c.Executors)
			require.Empty(t, c.HIL.Channels)
			require.Empty(t, c.HIL.SMTP.To)
			require.Empty(t, c.HIL.ChatUsers)
			require.Empty(t, c.HIL.WebAuthn.RPOrigins)
			require.Empty(t, c.Federation.Region.AllowedActions)
			c.Federation.Region.AllowedActions = nil
			c.TrustedKeys, c.Executors = nil, nil
			c.HIL.Channels, c.HIL.SMTP.To, c.HIL.ChatUsers, c.HIL.WebAuthn.RPOrigins = nil, nil, nil, nil
			require.Equal(t, def, c)
		})
	}
}

// Only the auditor's example shows the audit section; every example names its own
// service's addresses and no other's.
func TestExamplesShowWhatTheServiceNeeds(t *testing.T) {
	t.Parallel()
	for _, name := range fabric.Names() {
		out, err := Example(name)
		require.NoError(t, err)
		if name == fabric.Auditor {
			require.Contains(t, string(out), "\naudit:\n")
		} else {
			require.NotContains(t, string(out), "\naudit:\n", name)
		}
		for _, other := range fabric.Names() {
			if other != name {
				require.NotContains(t, string(out), "  "+other+":\n", name)
			}
		}
		require.Contains(t, string(out), "  "+name+":\n")
	}
	_, err := Example("nope")
	require.ErrorContains(t, err, "unknown service")
}

// A key without documentation in exampleDocs fails the generator, naming it, so a new
// setting cannot reach the examples unexplained. (Not parallel: it edits the table.)
func TestExampleRefusesAnUndocumentedKey(t *testing.T) {
	saved := exampleDocs["admission.tenant.burst"]
	delete(exampleDocs, "admission.tenant.burst")
	defer func() { exampleDocs["admission.tenant.burst"] = saved }()
	_, err := Example(fabric.Coordinator)
	require.ErrorContains(t, err, "admission.tenant.burst is not documented")
}
