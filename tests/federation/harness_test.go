// Package federation tests regions as processes: five region negotiators and the
// coordinating negotiator, each a real child process of the fabric binary (built once
// in TestMain) with its own data folder, configuration, Ed25519 key and free loopback
// ports, authenticating with FEDERATION_TOKEN. The faults are real: SIGKILL, a port
// nobody listens on, a region slower than the deadline, a key the registry does not
// hold, a coordinator killed mid-round and restarted.
package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/federation/fedtest"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// token is the federation token every process of the test federation shares. The
// tests check it never reaches a log.
const token = "fed-test-token-7c1d9a0e4b2f"

// bin is the fabric binary, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "federation-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if bin, err = fabrictest.BuildBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// ports already handed out by this test process.
var portsTaken sync.Map

// freePort is a free loopback port below the kernel's ephemeral range, so that a
// process restarted on it does not find it taken by someone's 127.0.0.1:0.
func freePort(t testing.TB) int {
	t.Helper()
	const lo, hi = 10000, 20000
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if _, taken := portsTaken.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// logs collects a process's output.
type logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if os.Getenv("FABRIC_TEST_LOGS") == "1" {
		_, _ = os.Stderr.Write(p)
	}
	return l.buf.Write(p)
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// proc is one negotiator process: its configuration and, while it runs, its command.
type proc struct {
	t        testing.TB
	name     string
	dir      string
	cfgFile  string
	httpAddr string
	grpcAddr string
	logs     *logs
	extraEnv []string          // appended to env()
	addrs    map[string]string // service -> gRPC address

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// newProc writes a negotiator's configuration: target federated-negotiator, its own
// data folder, free ports, simulation mode, and extra (YAML appended).
func newProc(t testing.TB, name, extra string) *proc {
	return newProcTarget(t, name, fabric.Negotiator, extra)
}

// newProcTarget is newProc for target (a service name, or "all": every service on free
// ports, p.addrs). p.httpAddr and p.grpcAddr are the negotiator's.
func newProcTarget(t testing.TB, name, target, extra string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, name: name, dir: dir, logs: &logs{}, addrs: map[string]string{}}
	var services strings.Builder
	for _, svc := range fabric.Services {
		if target != "all" && svc.Name != target {
			continue
		}
		h, g := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
		p.addrs[svc.Name] = g
		if svc.Name == fabric.Negotiator {
			p.httpAddr, p.grpcAddr = h, g
		}
		fmt.Fprintf(&services, "  %s: {http_addr: %q, grpc_addr: %q}\n", svc.Name, h, g)
	}
	p.cfgFile = filepath.Join(dir, "fabric.yaml")
	body := fmt.Sprintf("target: %s\ndata_dir: %s\nreports_dir: %s\nsimulation_mode: \"true\"\n"+
		"shutdown_timeout: 2s\ntelemetry: {log_level: info}\nservices:\n%s%s",
		target, filepath.Join(dir, "data"), filepath.Join(dir, "reports"), services.String(), extra)
	require.NoError(t, os.WriteFile(p.cfgFile, []byte(body), 0o600))
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (last 30 lines):\n%s", name, tail(p.logs.String(), 30))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// env is the child's environment: the federation token, and none of the fabric's own
// variables from the test's environment.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FABRIC_") || k == "POSTGRES_DSN" || k == "SIMULATION_MODE" || k == "GLOBAL_REGISTRY_URL" ||
			k == "FEDERATION_TOKEN" || k == "PHASE_I4_DECISION_TIMEOUT_MS" {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "FEDERATION_TOKEN="+token)
}

// start starts the process and waits until it answers /health (bounded).
func (p *proc) start() {
	t := p.t
	t.Helper()
	cmd := exec.Command(bin, "-config", p.cfgFile)
	cmd.Dir, cmd.Env = p.dir, append(env(), p.extraEnv...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://" + p.httpAddr + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s exited while starting:\n%s", p.name, tail(p.logs.String(), 30))
		case <-time.After(25 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "%s does not answer /health after a minute", p.name)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// stop sends SIGTERM (SIGKILL after 5 s) and waits.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// metric returns the value of one sample of the process's /metrics ("name{labels}").
func (p *proc) metric(sample string) float64 {
	p.t.Helper()
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	require.NoError(p.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			require.NoError(p.t, err)
			return v
		}
	}
	p.t.Fatalf("%s: no sample %s in /metrics", p.name, sample)
	return 0
}

// region is one region process and what the registry says about it.
type region struct {
	*proc
	regionAddr string
	pub        ed25519.PublicKey
}

// regionOpts tune one region.
type regionOpts struct {
	voteDelay time.Duration
	forger    bool // signs with a key the registry does not hold
	absent    bool // never started: its registry endpoint refuses connections
}

// writeKey writes a fresh Ed25519 private key (PEM PKCS #8) and returns its public key.
func writeKey(t testing.TB, path string) ed25519.PublicKey {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(crand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	return pub
}

// federation is five (or more) regions and the coordinating negotiator.
type federation struct {
	t       testing.TB
	regions []*region
	coord   *proc
	signer  *auth.Signer
}

var regionNames = []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south"}

// newFederation starts the regions (opts by name) and the coordinator, whose registry
// file lists them.
func newFederation(t testing.TB, opts map[string]regionOpts) *federation {
	return newFederationWith(t, opts, setup{})
}

// setup varies how the federation is wired.
type setup struct {
	// viaURL: the coordinator reads the registry from GLOBAL_REGISTRY_URL (an HTTP
	// server of the test) instead of a file.
	viaURL bool
	// mtls: every process has its own certificate, signed by one CA generated here.
	mtls bool
	// allInOne: the coordinating negotiator is the all-in-one fabric (target all), so
	// its decision coordinator checks the certificates and seals consensus bundles.
	allInOne bool
}

// newFederationWith is newFederation wired as s says.
func newFederationWith(t testing.TB, opts map[string]regionOpts, s setup) *federation {
	t.Helper()
	f := &federation{t: t}
	var ca *fedtest.CA
	if s.mtls {
		ca = fedtest.NewCA(t, t.TempDir(), "federation-ca")
	}
	// tlsYAML is the federation.tls block of one process (empty without mTLS).
	tlsYAML := func(name string) string {
		if ca == nil {
			return ""
		}
		crt, key := ca.Leaf(t, name)
		return fmt.Sprintf("  tls: {cert_file: %q, key_file: %q, ca_file: %q}\n", crt, key, ca.CertFile())
	}
	var docs []map[string]any
	for _, name := range regionNames {
		o := opts[name]
		r := &region{regionAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		keyDir := t.TempDir()
		keyFile := filepath.Join(keyDir, name+".key")
		r.pub = writeKey(t, keyFile)
		if o.forger { // the registry holds r.pub; the process signs with another key
			writeKey(t, keyFile)
		}
		r.proc = newProc(t, name, fmt.Sprintf(`federation:
  region:
    name: %s
    key_file: %s
    grpc_addr: %q
    allowed_actions: [scale]
    max_replicas: 100
    capacity: 50
    vote_delay: %s
%s`, name, keyFile, r.regionAddr, o.voteDelay, tlsYAML(name)))
		if !o.absent {
			r.start()
		}
		f.regions = append(f.regions, r)
		docs = append(docs, map[string]any{"name": name, "endpoint": r.regionAddr, "weight": 1, "public_key": regionkeys.PublicKeyPEM(r.pub)})
	}
	raw, err := json.Marshal(map[string]any{"regions": docs})
	require.NoError(t, err)
	if s.viaURL {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(raw)
		}))
		t.Cleanup(srv.Close)
		f.coord = newProc(t, "coordinator", "federation:\n  enabled: true\n"+tlsYAML("coordinator"))
		f.coord.extraEnv = []string{"GLOBAL_REGISTRY_URL=" + srv.URL + "/regions.json"}
	} else {
		regFile := filepath.Join(t.TempDir(), "registry.json")
		require.NoError(t, os.WriteFile(regFile, raw, 0o600))
		target := fabric.Negotiator
		if s.allInOne {
			target = "all"
		}
		f.coord = newProcTarget(t, "coordinator", target, fmt.Sprintf("federation:\n  enabled: true\n  registry_file: %s\n%s", regFile, tlsYAML("coordinator")))
	}
	f.coord.start()
	key, err := auth.LoadOrCreateDevKey(filepath.Join(f.coord.dir, "data"))
	require.NoError(t, err)
	f.signer = auth.NewSigner(key, "decision-fabric", "decision-fabric")
	t.Cleanup(func() {
		for _, p := range append([]*proc{f.coord}, procs(f.regions)...) {
			require.NotContains(t, p.logs.String(), token, "%s logged the federation token", p.name)
		}
	})
	return f
}

func procs(rs []*region) []*proc {
	out := make([]*proc, len(rs))
	for i, r := range rs {
		out[i] = r.proc
	}
	return out
}

// trusted is the registry's keys, as a certificate verifier takes them.
func (f *federation) trusted() map[string][]byte {
	out := map[string][]byte{}
	for _, r := range f.regions {
		out[r.name] = []byte(regionkeys.PublicKeyPEM(r.pub))
	}
	return out
}

// client calls the coordinator's NegotiatorService as tenant t1's service identity.
func (f *federation) client() (negotiatorv1.NegotiatorServiceClient, context.Context, func()) {
	f.t.Helper()
	conn, err := grpc.NewClient(f.coord.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(f.t, err)
	jwt, err := f.signer.Mint("federation-test", "t1", []string{auth.RoleProposer}, time.Hour)
	require.NoError(f.t, err)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+jwt)
	return negotiatorv1.NewNegotiatorServiceClient(conn), ctx, func() { _ = conn.Close() }
}

// start starts a negotiation of scale(12) across the five regions.
func (f *federation) start(proposal string, deadline time.Duration, rule negotiatorv1.QuorumRule) *negotiatorv1.Negotiation {
	f.t.Helper()
	c, ctx, done := f.client()
	defer done()
	resp, err := c.StartNegotiation(ctx, &negotiatorv1.StartNegotiationRequest{ProposalId: proposal, Manifest: scaleManifest(12),
		DeadlineMs: deadline.Milliseconds(), QuorumRule: rule})
	require.NoError(f.t, err)
	return resp.GetNegotiation()
}

// wait polls the negotiation until it ends (bounded).
func (f *federation) wait(id string) *negotiatorv1.Negotiation {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, ctx, done := f.client()
		resp, err := c.GetNegotiationStatus(ctx, &negotiatorv1.GetNegotiationStatusRequest{Id: id})
		done()
		if err == nil && resp.GetNegotiation().GetState() != negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING {
			return resp.GetNegotiation()
		}
		require.True(f.t, time.Now().Before(deadline), "negotiation %s still running after 30 s (last error %v)", id, err)
		time.Sleep(20 * time.Millisecond)
	}
}
