package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
)

func TestResolveOrdersDependenciesFirst(t *testing.T) {
	t.Parallel()
	order, err := resolve(fabric.Coordinator)
	require.NoError(t, err)
	require.Equal(t, []string{Telemetry, Precheck, Auth, Store, fabric.Coordinator}, order)

	all, err := resolve(All)
	require.NoError(t, err)
	require.Len(t, all, 4+len(fabric.Services), "each module once")
	require.Equal(t, Telemetry, all[0])

	_, err = resolve("store")
	require.ErrorContains(t, err, "unknown target", "shared modules are not targets")
	_, err = resolve("nope")
	require.ErrorContains(t, err, "unknown target")
}

func TestEveryServiceHasAModule(t *testing.T) {
	t.Parallel()
	for _, name := range fabric.Names() {
		require.NotNil(t, modules[name].service, name)
	}
}

// TestConfigExamplesBoot boots every services/*/config.example.yaml, so the examples
// never rot: each must load strictly, start its service and answer /health.
func TestConfigExamplesBoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "services")
	for _, name := range fabric.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(root, name, "config.example.yaml")
			cfg, err := config.Load(path, func(k string) (string, bool) {
				if k == "SIMULATION_MODE" {
					return "true", true
				}
				return "", false
			})
			require.NoError(t, err)
			require.Equal(t, name, cfg.Target)
			cfg.DataDir = t.TempDir()
			cfg.ReportsDir = t.TempDir()
			ephemeralPorts(cfg)
			r, err := Start(context.Background(), cfg, io.Discard)
			require.NoError(t, err)
			defer func() { require.NoError(t, r.Stop()) }()
			require.Len(t, r.Servers, 1)
			resp, err := http.Get("http://" + r.Servers[name].HTTPAddr() + "/health")
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var h map[string]any
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
			require.Equal(t, name, h["service"])
		})
	}
}

func TestBlockRefusesToStart(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.DataDir, cfg.ReportsDir = t.TempDir(), t.TempDir()
	cfg.SimulationMode = "false" // production demanded, but nothing is configured
	_, err := Start(context.Background(), cfg, io.Discard)
	require.ErrorContains(t, err, "precheck")
	_, statErr := os.Stat(filepath.Join(cfg.ReportsDir, "I.4_precheck.json"))
	require.NoError(t, statErr, "the report is written even when blocked")
}

func TestMainCommands(t *testing.T) {
	t.Parallel()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Main(context.Background(), args, All, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, _ := run("-list-targets")
	require.Equal(t, 0, code)
	require.Equal(t, strings.Join(Targets(), "\n")+"\n", out)

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

func TestStopIsGraceful(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.DataDir, cfg.ReportsDir = t.TempDir(), t.TempDir()
	cfg.SimulationMode = "true"
	cfg.ShutdownTimeout = config.Duration(2 * time.Second)
	ephemeralPorts(cfg)
	r, err := Start(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	require.Len(t, r.Servers, len(fabric.Services))
	require.NoError(t, r.Stop())
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

// An unreachable POSTGRES_DSN makes the precheck choose simulation, and simulation runs
// on the embedded store: the fabric starts instead of failing on the DSN.
func TestUnreachablePostgresFallsBackToTheEmbeddedStore(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Target = fabric.Scorer
	cfg.DataDir, cfg.ReportsDir = t.TempDir(), t.TempDir()
	cfg.Integrations.PostgresDSN = "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
	ephemeralPorts(cfg)
	r, err := Start(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Stop()) }()
	require.True(t, r.App.Simulation)
	require.Equal(t, "sqlite", r.App.Store.Backend())
}

// `fabric precheck -config FILE` decides from the same configuration `fabric serve`
// reads: a dependency named only in the file is checked.
func TestPrecheckCommandReadsTheConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("integrations:\n  vault_addr: \"http://127.0.0.1:1\"\n"), 0o600))
	var out, errOut bytes.Buffer
	code := Main(context.Background(), []string{"precheck", "-config", cfgPath, "-reports-dir", filepath.Join(dir, "r"), "-timeout", "1s"}, All, &out, &errOut)
	require.Contains(t, []int{0, 2}, code, out.String())
	require.Regexp(t, `unreachable\s+vault`, out.String(), "VAULT_ADDR came from the file")
}

// ephemeralPorts makes every service of cfg listen on a free loopback port.
func ephemeralPorts(cfg config.Config) {
	for n, l := range cfg.Services {
		l.HTTPAddr, l.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Services[n] = l
	}
}
