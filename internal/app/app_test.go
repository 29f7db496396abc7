package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
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

// ephemeralPorts makes every service of cfg listen on a free loopback port.
func ephemeralPorts(cfg config.Config) {
	for n, l := range cfg.Services {
		l.HTTPAddr, l.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Services[n] = l
	}
}
