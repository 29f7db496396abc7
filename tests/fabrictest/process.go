package fabrictest

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

// Build builds ./cmd/fabric once into dir and returns the binary's path (tests that
// start the fabric as child processes: tests/crash, tests/replicas).
func Build(t testing.TB, dir string) string {
	t.Helper()
	bin, err := BuildBinary(dir)
	require.NoError(t, err)
	return bin
}

// BuildBinary is Build for a TestMain (no testing.TB yet).
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "fabric")
	build := exec.Command("go", "build", "-o", bin, "github.com/decision-fabric/fabric/cmd/fabric")
	var out bytes.Buffer
	build.Stdout, build.Stderr = &out, &out
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/fabric: %w: %s", err, out.String())
	}
	return bin, nil
}

// ProcessOptions configure a fabric run as a child process (cmd/fabric).
type ProcessOptions struct {
	// DSN is the Postgres store; "" for SQLite in the data directory.
	DSN string
	// Regions and Policy are the regions file's and the policy file's contents.
	Regions, Policy string
	// DataDir, when set, is the data directory (keys, SQLite): replicas of one fabric
	// share it, so they hold the same keys. Otherwise the process gets its own.
	DataDir string
	// Target is the configuration's target: "all" (the default) or one service.
	Target string
	// Services, when set, are the services' addresses (a split set shares them);
	// otherwise every service gets free loopback ports.
	Services map[string]config.Listen
	// Extra is YAML appended to the configuration (top-level keys).
	Extra string
	// Name prefixes the process's log lines ("" for none).
	Name string
}

// Process is the fabric as a child process (cmd/fabric): started, SIGKILLed and
// restarted on one store.
type Process struct {
	t       testing.TB
	bin     string
	dir     string
	cfgFile string
	Cfg     config.Config
	DSN     string // "" for SQLite
	Logs    *Logs

	mu   sync.Mutex
	life *processLife

	signer *auth.Signer
}

// NewProcess writes the configuration (free loopback ports unless opts.Services,
// the store, the regions and the policy) without starting anything. The process is
// stopped (SIGTERM) when the test ends.
func NewProcess(t testing.TB, bin string, opts ProcessOptions) *Process {
	t.Helper()
	dir := t.TempDir()
	regions, pol := filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(opts.Regions), 0o600))
	require.NoError(t, os.WriteFile(pol, []byte(opts.Policy), 0o600))
	if opts.Services == nil {
		opts.Services = FreeServicePorts(t)
	}
	var services strings.Builder
	for _, s := range fabric.Services {
		l := opts.Services[s.Name]
		fmt.Fprintf(&services, "  %s: {http_addr: %q, grpc_addr: %q}\n", s.Name, l.HTTPAddr, l.GRPCAddr)
	}
	if opts.DataDir == "" {
		opts.DataDir = filepath.Join(dir, "data")
	}
	if opts.Target == "" {
		opts.Target = "all"
	}
	cfgFile := filepath.Join(dir, "fabric.yaml")
	body := fmt.Sprintf("target: %s\ndata_dir: %s\nreports_dir: %s\nsimulation_mode: \"true\"\nregions_file: %s\npolicy_file: %s\n"+
		"shutdown_timeout: 5s\ntelemetry: {log_level: warn}\nservices:\n%s",
		opts.Target, opts.DataDir, filepath.Join(dir, "reports"), regions, pol, services.String())
	if opts.DSN != "" {
		body += fmt.Sprintf("integrations: {postgres_dsn: %q}\n", opts.DSN)
	}
	body += opts.Extra
	require.NoError(t, os.WriteFile(cfgFile, []byte(body), 0o600))
	cfg, err := config.Load(cfgFile, nil)
	require.NoError(t, err)
	f := &Process{t: t, bin: bin, dir: dir, cfgFile: cfgFile, Cfg: cfg, DSN: opts.DSN, Logs: &Logs{prefix: opts.Name}}
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
			t.Logf("last log lines of %s:\n%s", cmp(opts.Name, "the fabric"), f.Logs.Tail(60))
		}
	})
	return f
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// FreeServicePorts gives every service two free loopback ports (FreePort).
func FreeServicePorts(t testing.TB) map[string]config.Listen {
	t.Helper()
	out := make(map[string]config.Listen, len(fabric.Services))
	for _, s := range fabric.Services {
		out[s.Name] = config.Listen{HTTPAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), GRPCAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t))}
	}
	return out
}

// env is the child's environment: this process's, with the fabric's own variables
// set from the configuration (an exported POSTGRES_DSN must not pick the store).
func (f *Process) env() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "POSTGRES_DSN", "SIMULATION_MODE", "FABRIC_DATA_DIR", "FABRIC_POLICY_FILE", "PHASE_I4_DECISION_TIMEOUT_MS", "GOGC":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "POSTGRES_DSN="+f.DSN, "SIMULATION_MODE=true")
}

// processLife is one run of the process.
type processLife struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, once exited is closed
}

// Start starts the process and waits until the services it runs answer /health
// (bounded).
func (f *Process) Start() {
	t := f.t
	t.Helper()
	cmd := exec.Command(f.bin, "-config", f.cfgFile)
	cmd.Dir, cmd.Env = f.dir, f.env()
	cmd.Stdout, cmd.Stderr = f.Logs, f.Logs
	require.NoError(t, cmd.Start())
	life := &processLife{cmd: cmd, exited: make(chan struct{})}
	go func() {
		life.err = cmd.Wait()
		f.Logs.Note(fmt.Sprintf("process %d exited: %v", cmd.Process.Pid, life.err))
		close(life.exited)
	}()
	f.mu.Lock()
	f.life = life
	f.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, s := range fabric.Services {
		if f.Cfg.Target != "all" && f.Cfg.Target != s.Name {
			continue
		}
		url := "http://" + f.Cfg.Services[s.Name].HTTPAddr + "/health"
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
				t.Fatalf("the fabric exited while starting: %v\n%s", life.err, f.Logs.Tail(40))
			case <-time.After(50 * time.Millisecond):
			}
			require.Less(t, attempt, 1200, "%s does not answer /health after a minute", s.Name)
		}
	}
	if f.signer == nil {
		key, err := auth.LoadOrCreateDevKey(f.Cfg.DataDir)
		require.NoError(t, err)
		f.signer = auth.NewSigner(key, f.Cfg.Auth.Issuer, f.Cfg.Auth.Audience)
	}
}

// Kill sends SIGKILL to the process (no graceful stop: nothing is flushed or
// closed) and waits until it is gone.
func (f *Process) Kill() {
	f.t.Helper()
	f.mu.Lock()
	life := f.life
	f.life = nil
	f.mu.Unlock()
	require.NotNil(f.t, life, "no fabric process to kill")
	f.Logs.Note(fmt.Sprintf("SIGKILL to process %d", life.cmd.Process.Pid))
	require.NoError(f.t, syscall.Kill(life.cmd.Process.Pid, syscall.SIGKILL))
	<-life.exited
}

// Token mints a development token for tenant with roles.
func (f *Process) Token(tenant string, roles ...string) string {
	return f.TokenFor("process-test", tenant, nil, roles...)
}

// TokenFor mints a development token for subject, with a groups claim when groups is
// not empty (approval rules filter reviewers by group; an approver must not be the
// proposer).
func (f *Process) TokenFor(subject, tenant string, groups []string, roles ...string) string {
	tok, err := f.signer.MintWithGroups(subject, tenant, roles, groups, 2*time.Hour)
	require.NoError(f.t, err)
	return tok
}

// URL is a service's base REST URL.
func (f *Process) URL(service string) string {
	return "http://" + f.Cfg.Services[service].HTTPAddr
}

// AuditVerify runs `fabric audit-verify` on the store with extra flags; it returns
// the exit code and the output.
func (f *Process) AuditVerify(extra ...string) (int, string) {
	args := append([]string{"audit-verify", "-data-dir", f.Cfg.DataDir}, extra...)
	if f.DSN != "" {
		args = append(args, "-postgres-dsn", f.DSN)
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

// FreePort is a free loopback port below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default). A process
// restarted on the same ports leaves them free while it is dead: a port from the
// ephemeral range could then be taken by another test's `127.0.0.1:0` (a CI run once
// lost the hil-gateway's that way). Below it, only a process that asks for that port
// by number can.
func FreePort(t testing.TB) int {
	t.Helper()
	const lo, hi = 20000, 32000
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if _, taken := portsTaken.LoadOrStore(port, true); taken {
			continue // given to another service of this test run already
		}
		if !lockPort(port) {
			continue // given out by another test process (go test runs packages at once)
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

// lockPort takes an exclusive lock on a file named after port, held until this test
// process exits (the kernel releases it then, even on a crash): test binaries that go
// test runs at the same time never give out the same port, which a child fabric binds
// only seconds later (a CI run lost a split set's scorer port to another package's
// child that way). A port whose lock cannot be taken or made is not given out.
func lockPort(port int) bool {
	dir := filepath.Join(os.TempDir(), "decision-fabric-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return false
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return false
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		_ = f.Close()
		return false
	}
	portLocks.Store(port, f) // kept open: the lock lasts as long as this process
	return true
}

// portLocks hold the files of the ports this test process locked.
var portLocks sync.Map

// portsTaken are the ports FreePort gave out in this test process.
var portsTaken sync.Map

// Logs keeps a process's output (all its lives), shown when a test fails; with
// FABRIC_TEST_LOGS=1 it is also copied to stderr.
type Logs struct {
	prefix string
	mu     sync.Mutex
	buf    bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("FABRIC_TEST_LOGS") == "1" {
		if l.prefix != "" {
			_, _ = io.WriteString(os.Stderr, l.prefix+": ")
		}
		_, _ = os.Stderr.Write(p)
	}
	if l.buf.Len() > 8<<20 { // keep the newest 4 MiB
		rest := l.buf.Bytes()[l.buf.Len()-4<<20:]
		l.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return l.buf.Write(p)
}

// Note writes a line of the test's own into the log.
func (l *Logs) Note(s string) { _, _ = io.WriteString(l, "== test: "+s+"\n") }

// Tail is the last n lines.
func (l *Logs) Tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
