package crash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
)

// crashRegions: tenant t1 negotiates with three regions that answer at once (its
// negotiations end in milliseconds, under the default 30 s deadline); tenant t2 with
// three regions that take crashSlowLatency to answer, under crashShortDeadline, so
// that at any moment some of t2's negotiations are running and a kill leaves them
// to pass their deadline while the fabric is dead.
const crashRegions = `
quorum_rule: majority
regions:
  - {name: eu-west, capacity: 1000}
  - {name: eu-central, capacity: 1000}
  - {name: us-east, capacity: 1000}
  - {name: slow-a, capacity: 1000, latency: 400ms}
  - {name: slow-b, capacity: 1000, latency: 400ms}
  - {name: slow-c, capacity: 1000, latency: 400ms}
tenants:
  t1:
    regions: [eu-west, eu-central, us-east]
  t2:
    regions: [slow-a, slow-b, slow-c]
`

// crashPolicy classifies every change as low impact (no human approval step), and
// gives tenant t2 a short negotiation deadline.
var crashPolicy = fmt.Sprintf(`
version: 1
defaults:
  quorum: majority
  max_monthly_cost_delta: 0
  impact_rules: []
tenants:
  t2:
    decision_timeout_ms: %d
`, crashShortDeadline.Milliseconds())

// crashRegionsOf are the regions each tenant's proposals name.
var crashRegionsOf = map[string][]string{
	"t1": {"eu-west", "eu-central", "us-east"},
	"t2": {"slow-a", "slow-b", "slow-c"},
}

// crashFabric is the all-in-one fabric as a child process (cmd/fabric), started,
// SIGKILLed and restarted on one store.
type crashFabric struct {
	t       *testing.T
	bin     string
	dir     string
	cfgFile string
	cfg     config.Config
	dsn     string // "" for SQLite
	logs    *crashLogs

	mu   sync.Mutex
	life *crashLife

	signer *auth.Signer
}

// crashBuild builds ./cmd/fabric once into dir.
func crashBuild(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "fabric")
	build := exec.Command("go", "build", "-o", bin, "github.com/decision-fabric/fabric/cmd/fabric")
	var out bytes.Buffer
	build.Stdout, build.Stderr = &out, &out
	require.NoError(t, build.Run(), "go build ./cmd/fabric: %s", out.String())
	return bin
}

// crashNewFabric writes the configuration (free loopback ports, the store, the
// regions and policy above) without starting anything.
func crashNewFabric(t *testing.T, bin, dsn string) *crashFabric {
	t.Helper()
	dir := t.TempDir()
	regions, pol := filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(crashRegions), 0o600))
	require.NoError(t, os.WriteFile(pol, []byte(crashPolicy), 0o600))
	var services strings.Builder
	for _, s := range fabric.Services {
		fmt.Fprintf(&services, "  %s: {http_addr: \"127.0.0.1:%d\", grpc_addr: \"127.0.0.1:%d\"}\n", s.Name, crashFreePort(t), crashFreePort(t))
	}
	cfgFile := filepath.Join(dir, "fabric.yaml")
	body := fmt.Sprintf("target: all\ndata_dir: %s\nreports_dir: %s\nsimulation_mode: \"true\"\nregions_file: %s\npolicy_file: %s\n"+
		"shutdown_timeout: 5s\ntelemetry: {log_level: warn}\nservices:\n%s",
		filepath.Join(dir, "data"), filepath.Join(dir, "reports"), regions, pol, services.String())
	if dsn != "" {
		body += fmt.Sprintf("integrations: {postgres_dsn: %q}\n", dsn)
	}
	require.NoError(t, os.WriteFile(cfgFile, []byte(body), 0o600))
	cfg, err := config.Load(cfgFile, nil)
	require.NoError(t, err)
	f := &crashFabric{t: t, bin: bin, dir: dir, cfgFile: cfgFile, cfg: cfg, dsn: dsn, logs: &crashLogs{}}
	t.Cleanup(func() {
		f.mu.Lock()
		life := f.life
		f.life = nil
		f.mu.Unlock()
		if life != nil {
			_ = life.cmd.Process.Signal(syscall.SIGTERM)
			<-life.exited
		}
		if t.Failed() {
			t.Logf("last fabric log lines:\n%s", f.logs.tail(60))
		}
	})
	return f
}

// env is the child's environment: this process's, with the fabric's own variables
// set from the configuration (an exported POSTGRES_DSN must not pick the store).
func (f *crashFabric) env() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "POSTGRES_DSN", "SIMULATION_MODE", "FABRIC_DATA_DIR", "FABRIC_POLICY_FILE", "PHASE_I4_DECISION_TIMEOUT_MS", "GOGC":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "POSTGRES_DSN="+f.dsn, "SIMULATION_MODE=true")
}

// crashLife is one run of the process.
type crashLife struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, once exited is closed
}

// start starts the process and waits until every service answers /health (bounded).
func (f *crashFabric) start() {
	t := f.t
	t.Helper()
	cmd := exec.Command(f.bin, "-config", f.cfgFile)
	cmd.Dir, cmd.Env = f.dir, f.env()
	cmd.Stdout, cmd.Stderr = f.logs, f.logs
	require.NoError(t, cmd.Start())
	life := &crashLife{cmd: cmd, exited: make(chan struct{})}
	go func() {
		life.err = cmd.Wait()
		f.logs.note(fmt.Sprintf("process %d exited: %v", cmd.Process.Pid, life.err))
		close(life.exited)
	}()
	f.mu.Lock()
	f.life = life
	f.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, s := range fabric.Services {
		url := "http://" + f.cfg.Services[s.Name].HTTPAddr + "/health"
		for attempt := 0; ; attempt++ {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-life.exited:
				t.Fatalf("the fabric exited while starting: %v\n%s", life.err, f.logs.tail(40))
			case <-time.After(50 * time.Millisecond):
			}
			require.Less(t, attempt, 1200, "%s does not answer /health after a minute", s.Name)
		}
	}
	if f.signer == nil {
		key, err := auth.LoadOrCreateDevKey(f.cfg.DataDir)
		require.NoError(t, err)
		f.signer = auth.NewSigner(key, f.cfg.Auth.Issuer, f.cfg.Auth.Audience)
	}
}

// kill sends SIGKILL to the process (no graceful stop: nothing is flushed or
// closed) and waits until it is gone.
func (f *crashFabric) kill() {
	f.t.Helper()
	f.mu.Lock()
	life := f.life
	f.life = nil
	f.mu.Unlock()
	require.NotNil(f.t, life, "no fabric process to kill")
	f.logs.note(fmt.Sprintf("SIGKILL to process %d", life.cmd.Process.Pid))
	require.NoError(f.t, syscall.Kill(life.cmd.Process.Pid, syscall.SIGKILL))
	<-life.exited
}

// token mints a development token for tenant with roles.
func (f *crashFabric) token(tenant string, roles ...string) string {
	tok, err := f.signer.Mint("crash-test", tenant, roles, 2*time.Hour)
	require.NoError(f.t, err)
	return tok
}

// url is a service's base REST URL.
func (f *crashFabric) url(service string) string {
	return "http://" + f.cfg.Services[service].HTTPAddr
}

// auditVerify runs `fabric audit-verify` on the store with extra flags; it returns
// the exit code and the output.
func (f *crashFabric) auditVerify(extra ...string) (int, string) {
	args := append([]string{"audit-verify", "-data-dir", f.cfg.DataDir}, extra...)
	if f.dsn != "" {
		args = append(args, "-postgres-dsn", f.dsn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.bin, args...)
	cmd.Env = f.env()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	require.NoError(f.t, err, "audit-verify: %s", out)
	return -1, string(out)
}

// crashFreePort is a free loopback port below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default). The process is
// restarted on the same ports after every kill, and while it is dead its ports are
// free: a port from the ephemeral range could then be taken by another test's
// `127.0.0.1:0` (a CI run once lost the hil-gateway's that way). Below it, only a
// process that asks for that port by number can.
func crashFreePort(t *testing.T) int {
	t.Helper()
	const lo, hi = 20000, 32000
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if _, taken := crashPortsTaken.LoadOrStore(port, true); taken {
			continue // given to another service of this test run already
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		require.NoError(t, l.Close())
		return port
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

// crashPortsTaken are the ports crashFreePort gave out in this test process.
var crashPortsTaken sync.Map

// crashLogs keeps the fabric's output (all its lives), shown when a test fails; with
// FABRIC_TEST_LOGS=1 it is also copied to stderr.
type crashLogs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *crashLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("FABRIC_TEST_LOGS") == "1" {
		_, _ = os.Stderr.Write(p)
	}
	if l.buf.Len() > 8<<20 { // keep the newest 4 MiB
		rest := l.buf.Bytes()[l.buf.Len()-4<<20:]
		l.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return l.buf.Write(p)
}

func (l *crashLogs) note(s string) { _, _ = io.WriteString(l, "== crash test: "+s+"\n") }

func (l *crashLogs) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
