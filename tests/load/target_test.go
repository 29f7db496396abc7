package load

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, to count proposals
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// target is the fabric under load.
type target struct {
	coordinator string // base URL of the coordinator's REST API
	dataDir     string
	admission   config.Admission
	token       func(tenant string) string
	// peakRSS is the fabric's peak resident set in bytes, 0 when unknown.
	peakRSS func() int64
	// rss is the fabric's resident set now, in bytes (0 when unknown).
	rss func() int64
	// stored counts the proposals in the fabric's store.
	stored func() int
	// inFlight counts the proposals the lifecycle engine still owes a move
	// (SUBMITTED, NEGOTIATING, AGREED): its backlog.
	inFlight func() int
	where    string
}

// inProcess starts the fabric inside the test process on st (fast; its RSS includes
// the generator's).
func inProcess(t *testing.T, st fabrictest.Store) *target {
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st})
	stored := func() int { return count(t, "sqlite", sqliteDSN(f.Cfg.DataDir)) }
	if st == fabrictest.Postgres {
		stored = func() int { return count(t, "pgx", f.Cfg.Integrations.PostgresDSN.Reveal()) }
	}
	return &target{
		stored:      stored,
		coordinator: f.URL(fabric.Coordinator), dataDir: f.Cfg.DataDir, admission: f.Cfg.Admission,
		token:   func(tenant string) string { return f.Token(t, tenant, auth.RoleProposer) },
		peakRSS: func() int64 { return vmHWM(t, "self") },
		rss:     func() int64 { return procStatus(t, "self", "VmRSS") },
		where:   "in the test process (RSS includes the generator)",
	}
}

// child builds cmd/fabric and runs it as `make run` does (all services, embedded
// SQLite, simulation), on free loopback ports; its RSS is its own.
func child(t *testing.T) *target {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fabric")
	build := exec.Command("go", "build", "-o", bin, "github.com/decision-fabric/fabric/cmd/fabric")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run(), "go build ./cmd/fabric")

	// Ports from the harness: distinct within the run, below the ephemeral range (two
	// `127.0.0.1:0` listeners closed at once may be handed the same port: a soak once
	// failed on "sim-canary.http_addr also used by decision-coordinator").
	ports := fabrictest.FreeServicePorts(t)
	var services strings.Builder
	for _, s := range fabric.Services {
		fmt.Fprintf(&services, "  %s: {http_addr: %q, grpc_addr: %q}\n", s.Name, ports[s.Name].HTTPAddr, ports[s.Name].GRPCAddr)
	}
	dataDir := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "fabric.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf(
		"target: all\ndata_dir: %s\nreports_dir: %s\nsimulation_mode: \"true\"\ntelemetry: {log_level: warn}\nservices:\n%s",
		dataDir, filepath.Join(dir, "reports"), services.String())), 0o600))
	cfg, err := config.Load(cfgFile, nil)
	require.NoError(t, err)

	cmd := exec.Command(bin, "-config", cfgFile)
	cmd.Dir = dir
	if os.Getenv("FABRIC_TEST_LOGS") == "1" {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	url := "http://" + cfg.Services[fabric.Coordinator].HTTPAddr
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "the fabric answers /health")

	key, err := auth.LoadOrCreateDevKey(dataDir)
	require.NoError(t, err)
	signer := auth.NewSigner(key, cfg.Auth.Issuer, cfg.Auth.Audience)
	pid := strconv.Itoa(cmd.Process.Pid)
	return &target{
		coordinator: url, dataDir: dataDir, admission: cfg.Admission,
		token: func(tenant string) string {
			tok, err := signer.Mint("load", tenant, []string{auth.RoleProposer}, time.Hour)
			require.NoError(t, err)
			return tok
		},
		peakRSS: func() int64 { return vmHWM(t, pid) },
		rss:     func() int64 { return procStatus(t, pid, "VmRSS") },
		stored:  func() int { return count(t, "sqlite", sqliteDSN(dataDir)) },
		inFlight: func() int {
			return countWhere(t, "sqlite", sqliteDSN(dataDir), "status IN ('SUBMITTED', 'NEGOTIATING', 'AGREED')")
		},
		where: "a child process, as `make run`",
	}
}

// sqliteDSN opens the fabric's SQLite file read-only.
func sqliteDSN(dataDir string) string {
	return "file:" + filepath.Join(dataDir, store.SQLiteFileName) + "?mode=ro&_pragma=busy_timeout(5000)"
}

// count counts the proposals in a store (all tenants), through its SQL driver.
func count(t *testing.T, driver, dsn string) int {
	t.Helper()
	return countWhere(t, driver, dsn, "TRUE")
}

// countWhere counts the proposals in a store that satisfy where.
func countWhere(t *testing.T, driver, dsn, where string) int {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM proposals WHERE "+where).Scan(&n))
	return n
}

// vmHWM is the peak resident set (VmHWM) of process pid ("self": this one), in bytes;
// 0 when unavailable.
func vmHWM(t *testing.T, pid string) int64 { return procStatus(t, pid, "VmHWM") }

// procStatus is a size in /proc/<pid>/status (VmHWM, VmRSS, ...) of process pid
// ("self": this one), in bytes; 0 when unavailable.
func procStatus(t *testing.T, pid, field string) int64 {
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Logf("%s unavailable: %v", field, err)
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	return 0
}
