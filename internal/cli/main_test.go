package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func TestMainCommands(t *testing.T) {
	t.Parallel()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, app.All, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, _ := run("-list-targets")
	require.Equal(t, 0, code)
	require.Equal(t, strings.Join(app.Targets(), "\n")+"\n", out)

	code, _, errOut := run("bogus")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "unknown command")

	code, out, _ = run("policy", "check", filepath.Join("..", "..", "policies", "default.yaml"))
	require.Equal(t, 0, code)
	require.Contains(t, out, "ok")
	bad := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("version: 1\ndefaults:\n  approval_when: impact ==\n"), 0o600))
	code, _, errOut = run("policy", "check", bad)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, ":3:", "the error names the line")

	code, out, _ = run("version")
	require.Equal(t, 0, code)
	require.Equal(t, fabric.Version+"\n", out)

	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf("data_dir: %s\nintegrations:\n  federation_token: top-secret-value\n", t.TempDir())), 0o600))
	code, out, _ = run("-config", cfgPath, "-print-config")
	require.Equal(t, 0, code)
	require.NotContains(t, out, "top-secret-value")
	require.Contains(t, out, "<REDACTED>")

	code, out, errOut = run("token", "-config", cfgPath, "-tenant", "t9", "-role", "proposer,auditor")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, 2, strings.Count(strings.TrimSpace(out), "."), "a JWT")
	code, _, errOut = run("token", "-config", cfgPath, "-role", "root")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "unknown role")
}

// A service binary started with a config file that names no target serves its own
// service; a -target flag wins over the file, and the config is checked for that target
// only (a port clash between two other services does not stop it).
func TestLoadConfigTarget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte("data_dir: d\n"), 0o600))
	cfg, err := loadConfig(path, fabric.HIL, "")
	require.NoError(t, err)
	require.Equal(t, fabric.HIL, cfg.Target)

	clash := filepath.Join(t.TempDir(), "clash.yaml")
	require.NoError(t, os.WriteFile(clash, []byte("target: all\nservices:\n  decision-coordinator: {http_addr: \":9999\"}\n  proposal-composer: {http_addr: \":9999\"}\n"), 0o600))
	_, err = loadConfig(clash, "", "")
	require.Error(t, err, "all services: the clash matters")
	cfg, err = loadConfig(clash, "", fabric.Auditor)
	require.NoError(t, err, "one service: it does not")
	require.Equal(t, fabric.Auditor, cfg.Target)
}

// `fabric precheck -config FILE` decides from the same configuration `fabric serve`
// reads: a dependency named only in the file is checked.
func TestPrecheckCommandReadsTheConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("integrations:\n  vault_addr: \"http://127.0.0.1:1\"\n"), 0o600))
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"precheck", "-config", cfgPath, "-reports-dir", filepath.Join(dir, "r"), "-timeout", "1s"}, app.All, &out, &errOut)
	require.Contains(t, []int{0, 2}, code, out.String())
	require.Regexp(t, `unreachable\s+vault`, out.String(), "VAULT_ADDR came from the file")
}
