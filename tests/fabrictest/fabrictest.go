// Package fabrictest starts a whole Decision Fabric inside a test process, in either
// topology — all seven services as one process (target "all") or seven separately
// started services sharing a store (the split topology, on loopback) — so the same
// end-to-end scenarios run against both. It is the harness for tests/ and for service
// tests in services/*/tests.
package fabrictest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/decision-fabric/fabric/internal/app"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/services/decision-coordinator/coordinator"
	"github.com/decision-fabric/fabric/services/hil-gateway/hil"
)

// Topology says how the services are started.
type Topology string

// The two topologies.
const (
	AllInOne Topology = "all-in-one"
	Split    Topology = "split"
)

// Store says which backend the fabric uses.
type Store string

// The two backends.
const (
	SQLite   Store = "sqlite"
	Postgres Store = "postgres"
)

// Options configure a fabric.
type Options struct {
	Topology Topology
	Store    Store
	// Targets, when set, starts only these services (one process each), e.g. to test a
	// service alone; it overrides Topology.
	Targets []string
	// AuditorOwnStore gives the decision auditor its own database, as a deployment
	// where services own their data would: on SQLite its own file (store_dir), on
	// Postgres its own database. It needs the split topology (Topology Split, or
	// Targets naming the auditor alone in its process).
	AuditorOwnStore bool
	// Configure may adjust the configuration before start.
	Configure func(*config.Config)
	// Logs receives the fabric's log output (JSON lines) when set; otherwise it is
	// discarded, or written to stderr with FABRIC_TEST_LOGS=1.
	Logs io.Writer
}

// Fabric is a running fabric.
type Fabric struct {
	Cfg     config.Config
	running []*app.Running
	signer  *auth.Signer // the development identity provider
	service *auth.Signer // the fabric's service key (simulation)
	// auditorStore is the auditor's own database (Options.AuditorOwnStore), or zero.
	auditorStore store.Config
	client       *http.Client
}

// Start starts a fabric and stops it when the test ends.
func Start(t testing.TB, opts Options) *Fabric {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.ReportsDir = filepath.Join(dir, "reports")
	cfg.SimulationMode = "true"
	cfg.ShutdownTimeout = config.Duration(5 * time.Second)
	cfg.Telemetry.LogLevel = "warn"
	if opts.Store == Postgres {
		cfg.Integrations.PostgresDSN = config.Secret(pgtest.NewDSN(t))
	}
	chosen := assignPorts(t, cfg.Services, nil)
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	require.NoError(t, cfg.Validate())

	out := io.Writer(io.Discard)
	if os.Getenv("FABRIC_TEST_LOGS") == "1" {
		out = os.Stderr
	}
	if opts.Logs != nil {
		out = opts.Logs
	}
	f := &Fabric{client: &http.Client{Timeout: 30 * time.Second}}
	if opts.AuditorOwnStore {
		f.auditorStore = store.Config{DataDir: filepath.Join(dir, "auditor-store")}
		if opts.Store == Postgres {
			f.auditorStore = store.Config{PostgresDSN: pgtest.NewDSN(t)}
		}
	}
	targets := []string{app.All}
	if opts.Topology == Split {
		targets = fabric.Names()
	}
	if len(opts.Targets) > 0 {
		targets = opts.Targets
	}
	t.Cleanup(func() {
		for _, r := range f.running {
			require.NoError(t, r.Stop())
		}
	})
	for attempt := 1; ; attempt++ {
		err := f.start(cfg, targets, out)
		if err == nil {
			break
		}
		if attempt == maxStartAttempts || !addrInUse(err) {
			require.NoError(t, err)
		}
		// Another process bound one of the ports between freePorts and the fabric's
		// listen: give the services the harness chose ports for new ones, start again.
		t.Logf("fabrictest: %v; retrying with other ports", err)
		cfg.Services = maps.Clone(cfg.Services)
		chosen = assignPorts(t, cfg.Services, chosen)
	}
	f.Cfg = cfg
	key, err := auth.LoadOrCreateDevKey(cfg.DataDir)
	require.NoError(t, err)
	f.signer = auth.NewSigner(key, cfg.Auth.Issuer, cfg.Auth.Audience)
	if cfg.Auth.ServiceKeyFile == "" {
		svc, err := auth.LoadOrCreateDevServiceKey(cfg.DataDir)
		require.NoError(t, err)
		f.service = auth.NewServiceSigner(svc, cfg.Auth.Issuer, cfg.Auth.Audience)
	}
	return f
}

// Stores are the databases the fabric runs on: the shared one and, with
// Options.AuditorOwnStore, the auditor's own (zero otherwise). Tests open them to check
// who wrote what.
func (f *Fabric) Stores() (shared, auditor store.Config) {
	shared = store.Config{DataDir: f.Cfg.DataDir, PostgresDSN: f.Cfg.Integrations.PostgresDSN.Reveal()}
	return shared, f.auditorStore
}

// maxStartAttempts bounds the retries of a start that lost a port race.
const maxStartAttempts = 5

// start starts every target with cfg; on an error it stops the ones it started.
func (f *Fabric) start(cfg config.Config, targets []string, out io.Writer) error {
	for _, target := range targets {
		c := cfg
		c.Target = target
		if target == fabric.Auditor && f.auditorStore != (store.Config{}) {
			c.StoreDir = f.auditorStore.DataDir
			c.Integrations.PostgresDSN = config.Secret(f.auditorStore.PostgresDSN)
		} else if target == app.All && f.auditorStore != (store.Config{}) {
			return errors.New("fabrictest: AuditorOwnStore needs the auditor in a process of its own (Topology Split)")
		}
		r, err := app.Start(context.Background(), c, out)
		if err != nil {
			for _, r := range f.running {
				_ = r.Stop()
			}
			f.running = nil
			return fmt.Errorf("start %s: %w", target, err)
		}
		f.running = append(f.running, r)
	}
	return nil
}

// assignPorts gives every service free loopback ports, except those whose addresses
// differ from prev (set by a Configure hook), and returns what it assigned. prev nil
// assigns all.
func assignPorts(t testing.TB, services map[string]config.Listen, prev map[string]config.Listen) map[string]config.Listen {
	t.Helper()
	ports := freePorts(t, 2*len(fabric.Services))
	out := map[string]config.Listen{}
	for i, s := range fabric.Services {
		if prev != nil && services[s.Name] != prev[s.Name] {
			continue
		}
		l := config.Listen{
			HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			GRPCAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
		}
		services[s.Name], out[s.Name] = l, l
	}
	return out
}

// addrInUse reports whether err is a listener losing its port to another process.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// freePorts reserves n distinct loopback ports (closed again before use; collisions
// with other processes in between are possible but rare).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var ls []net.Listener
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Token mints a development token for the subject "test-user". A token for the
// service role alone is the fabric's own (signed with its service key, as its services
// sign theirs); any other is the identity provider's (see IDPToken).
func (f *Fabric) Token(t testing.TB, tenant string, roles ...string) string {
	t.Helper()
	return f.TokenFor(t, "test-user", tenant, roles...)
}

// TokenFor mints a development token for subject (the service key's for the service
// role alone, as Token).
func (f *Fabric) TokenFor(t testing.TB, subject, tenant string, roles ...string) string {
	t.Helper()
	if len(roles) == 1 && roles[0] == auth.RoleService {
		require.NotNil(t, f.service, "fabrictest: no development service key (auth.service_key_file is set)")
		tok, err := f.service.Mint(subject, tenant, roles, time.Hour)
		require.NoError(t, err)
		return tok
	}
	tok, err := f.signer.Mint(subject, tenant, roles, time.Hour)
	require.NoError(t, err)
	return tok
}

// TokenWithGroups mints a development token for subject with a groups claim (approval
// rules filter reviewers by group).
func (f *Fabric) TokenWithGroups(t testing.TB, subject, tenant string, groups []string, roles ...string) string {
	t.Helper()
	tok, err := f.signer.MintWithGroups(subject, tenant, roles, groups, time.Hour)
	require.NoError(t, err)
	return tok
}

// IDPToken mints a token with the development identity provider's key whatever the
// roles, as an attacker holding an identity-provider token with a forged role would.
func (f *Fabric) IDPToken(t testing.TB, tenant string, roles ...string) string {
	t.Helper()
	tok, err := f.signer.Mint("test-user", tenant, roles, time.Hour)
	require.NoError(t, err)
	return tok
}

// URL is the base REST URL of a service, e.g. "http://127.0.0.1:41234".
func (f *Fabric) URL(service string) string {
	return "http://" + f.Cfg.Services[service].HTTPAddr
}

// Response is a REST response.
type Response struct {
	Status int
	Body   []byte
	Header http.Header
}

// Do sends a REST request; token may be "" (no Authorization header). headers are
// "Name: value" strings.
func (f *Fabric) Do(t testing.TB, method, service, path, token, body string, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.URL(service)+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := f.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, resp.Body)
	require.NoError(t, err)
	return Response{Status: resp.StatusCode, Body: buf.Bytes(), Header: resp.Header}
}

// Conn is a gRPC client connection to a service, closed when the test ends.
func (f *Fabric) Conn(t testing.TB, service string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(f.Cfg.Services[service].DialAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Local is the in-process connection to a service (server.Server.Local), as its peers
// in the same process call it: the same interceptor chain as Conn, without a socket.
func (f *Fabric) Local(t testing.TB, service string) grpc.ClientConnInterface {
	t.Helper()
	for _, r := range f.running {
		if s, ok := r.Servers[service]; ok {
			return s.Local()
		}
	}
	t.Fatalf("fabrictest: %s is not running", service)
	return nil
}

// AccessPolicy is every running service's access policy, by service name.
func (f *Fabric) AccessPolicy() map[string]auth.Policy {
	out := map[string]auth.Policy{}
	for _, r := range f.running {
		for name, s := range r.Servers {
			out[name] = s.Policy()
		}
	}
	return out
}

// WithToken returns ctx carrying token as gRPC bearer metadata.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// Store is the store of the fabric's first process (the all-in-one process, or the
// first service of a split fabric): the same handle the services use, so that
// store.Observe sees their commits.
func (f *Fabric) Store() store.Store { return f.running[0].App.Store }

// Stop stops the fabric's processes now (a test of what survives a stop); the
// cleanup then has nothing left to stop.
func (f *Fabric) Stop(t testing.TB) {
	t.Helper()
	for _, r := range f.running {
		require.NoError(t, r.Stop())
	}
	f.running = nil
}

// InstantRegions are the five default regions without their simulated network
// latency: a decision's time is then the fabric's own (benchmarks, commit counts).
const InstantRegions = `
quorum_rule: majority
regions:
  - {name: eu-west, capacity: 1000}
  - {name: eu-central, capacity: 1000}
  - {name: us-east, capacity: 1000}
  - {name: us-west, capacity: 1000}
  - {name: ap-south, capacity: 1000}
`

// LowImpactPolicy classifies every change as low impact, so the whole decision path
// runs without a human approval step.
const LowImpactPolicy = `
version: 1
defaults:
  quorum: majority
  max_monthly_cost_delta: 0
  impact_rules: []
`

// InstantLowImpact writes InstantRegions and LowImpactPolicy to files and returns the
// configuration hook that uses them.
func InstantLowImpact(t testing.TB) func(*config.Config) {
	t.Helper()
	dir := t.TempDir()
	regions, pol := filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(InstantRegions), 0o600))
	require.NoError(t, os.WriteFile(pol, []byte(LowImpactPolicy), 0o600))
	return func(c *config.Config) { c.RegionsFile, c.PolicyFile = regions, pol }
}

// BackgroundCommit reports whether a commit (seen by store.Observe) is the fabric's
// own background work rather than a request's: the audit relay and the audit log's
// batches, the hil-gateway's deliverer and sweeper, and the engine's lease renewals
// (which move no proposal). A test proving that reads never write counts every other
// commit; the background ones land whenever the machine lets them.
func BackgroundCommit(ctx context.Context) bool {
	switch store.CommitLabel(ctx) {
	case coordinator.RelayCommitLabel, auditlog.CommitLabel, hil.DeliveryCommitLabel, hil.SweeperCommitLabel, coordinator.LeaseCommitLabel:
		return true
	}
	return false
}
