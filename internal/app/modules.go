// Package app is the fabric's module graph. Every service is a named module with
// declared dependencies on shared modules (telemetry, precheck, store, auth); the
// target "all" runs the seven services in one process and a service name runs that one
// alone. Both modes go through the same code path: resolve the target's dependencies,
// initialise them in order, then serve every service module's server.
//
// Modules are wired by explicit constructor calls, not a DI framework (see grafana/mimir
// pkg/mimir/modules.go for the pattern).
package app

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/admission"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/events"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/judge"
	"github.com/decision-fabric/fabric/internal/metricsource"
	"github.com/decision-fabric/fabric/internal/model"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/precheck"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/telemetry"
	"github.com/decision-fabric/fabric/internal/vault"
	"github.com/decision-fabric/fabric/internal/world"
	"github.com/decision-fabric/fabric/services/confidence-scorer/scorer"
	"github.com/decision-fabric/fabric/services/decision-auditor/auditor"
	"github.com/decision-fabric/fabric/services/decision-coordinator/coordinator"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
	"github.com/decision-fabric/fabric/services/proposal-composer/composer"
	"github.com/decision-fabric/fabric/services/sim-canary/canary"
)

// Shared (non-service) module names.
const (
	Telemetry = "telemetry"
	Precheck  = "precheck"
	Store     = "store"
	Auth      = "auth"
	All       = "all"
)

// App holds what the modules built; later modules read what earlier ones set.
type App struct {
	Cfg        config.Config
	Log        *slog.Logger
	Out        io.Writer
	Precheck   precheck.Report
	Simulation bool
	Store      store.Store
	Verifier   *auth.Verifier
	// DevSigner is set when tokens are verified with the development key (simulation
	// only); it mints the token printed at start.
	DevSigner *auth.Signer
	// ServiceSigner mints the fabric's own service tokens: auth.service_key_file, or the
	// development key in simulation; nil when the fabric has no service identity.
	ServiceSigner *auth.Signer

	closers []func() error
	conns   conns

	signerOnce sync.Once
	signer     signing.Signer
	signerErr  error

	serviceTokensOnce sync.Once
	serviceTokens     *auth.TokenCache

	regionKeysOnce sync.Once
	regionKeys     *regionkeys.Registry
	regionKeysErr  error

	federation federationState

	sharedQuota     *admission.RedisStore
	sharedQuotaDone bool

	vaultOnce   sync.Once
	vaultClient *vault.Client
	vaultErr    error
	// vaultHealth caches GET /health's Vault probe: a token lookup at most every
	// vaultHealthEvery, not one per probe of every replica.
	vaultHealthMu   sync.Mutex
	vaultHealthAt   time.Time
	vaultHealthLast string
}

// vault is the Vault the keys configured under integrations.vault are read from; nil
// when none is (every key in its file).
func (a *App) vault() (*vault.Client, error) {
	a.vaultOnce.Do(func() {
		i := a.Cfg.Integrations
		if i.VaultAddr == "" || !i.Vault.Any() {
			return
		}
		a.vaultClient, a.vaultErr = vault.New(vault.Options{
			Addr: i.VaultAddr, Token: os.Getenv("VAULT_TOKEN"), TokenFile: i.Vault.TokenFile, Mount: i.Vault.KVMount,
		})
	})
	return a.vaultClient, a.vaultErr
}

// vaultField reads field of the secret at path, bounded in time.
func (a *App) vaultField(path, field string, base64 bool) ([]byte, error) {
	c, err := a.vault()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if base64 {
		return c.Base64Field(ctx, path, field)
	}
	return c.Field(ctx, path, field)
}

// quotaStore is the Redis that the services' replicas share their tenants' quotas
// through (integrations.redis_url, REDIS_URL); nil when it is not set (each replica
// keeps its own). Created once, at the first service.
func (a *App) quotaStore() (*admission.RedisStore, error) {
	if a.sharedQuotaDone {
		return a.sharedQuota, nil
	}
	a.sharedQuotaDone = true
	url := a.Cfg.Integrations.RedisURL.Reveal()
	if url == "" {
		return nil, nil
	}
	st, err := admission.NewRedisStore(admission.RedisOptions{URL: url, Logger: a.Log})
	if err != nil {
		return nil, err // never quotes the URL
	}
	a.sharedQuota = st
	a.closers = append(a.closers, st.Close)
	pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		a.Log.Warn("admission: REDIS_URL is set but Redis does not answer; tenant quotas are kept per replica until it does (GET /health: degraded)")
	} else {
		a.Log.Info("admission: tenant quotas shared across replicas through Redis")
	}
	return st, nil
}

type module struct {
	deps []string
	// init builds a shared module.
	init func(ctx context.Context, a *App) error
	// service builds a service module's definition.
	service func(ctx context.Context, a *App, reg prometheus.Registerer) (server.Service, error)
}

// modules is the graph. Service modules list the shared modules they use.
var modules = map[string]module{
	Telemetry: {init: initTelemetry},
	Precheck:  {deps: []string{Telemetry}, init: initPrecheck},
	Store:     {deps: []string{Precheck}, init: initStore},
	Auth:      {deps: []string{Precheck}, init: initAuth},

	fabric.Coordinator: {deps: []string{Store, Auth}, service: func(_ context.Context, a *App, reg prometheus.Registerer) (server.Service, error) {
		// The lifecycle engine calls the negotiator and the scorer after the request that
		// submitted a proposal has returned: as the fabric's service identity.
		if a.ServiceSigner == nil {
			return server.Service{}, errors.New("decision-coordinator: the lifecycle engine calls the negotiator and the scorer as the fabric's service identity: set auth.service_key_file (FABRIC_SERVICE_KEY_FILE)")
		}
		pol, err := a.policy()
		if err != nil {
			return server.Service{}, err
		}
		neg, err := a.Dial(fabric.Negotiator)
		if err != nil {
			return server.Service{}, err
		}
		sc, err := a.Dial(fabric.Scorer)
		if err != nil {
			return server.Service{}, err
		}
		keys, err := a.trustedKeys()
		if err != nil {
			return server.Service{}, err
		}
		executor, err := a.executor()
		if err != nil {
			return server.Service{}, err
		}
		aud, err := a.Dial(fabric.Auditor)
		if err != nil {
			return server.Service{}, err
		}
		hilConn, err := a.Dial(fabric.HIL)
		if err != nil {
			return server.Service{}, err
		}
		// P2: consensus bundles are signed with the fabric's cosign key (the composer's,
		// in TrustedKeys) and their quorum certificates checked against the registry.
		signer, err := a.manifestSigner()
		if err != nil {
			return server.Service{}, err
		}
		registry, err := a.regionRegistry()
		if err != nil {
			return server.Service{}, err
		}
		// Lifecycle events to Kafka, when KAFKA_URL is set (docs/events.md).
		relay, err := events.FromConfig(a.Cfg.Integrations.KafkaURL.Reveal(), a.Cfg.Events.KafkaTopic, a.Store, a.Log, reg)
		if err != nil {
			return server.Service{}, err
		}
		svc, err := coordinator.New(coordinator.Deps{
			Events: relay,
			Store:  a.Store, World: executor, Policy: pol,
			TrustedKeys: keys, RequireSignature: !a.Simulation,
			Signer: signer, RegionKeys: registry.Trusted(), RequireConsensusBundle: !a.Simulation,
			Audit:           auditClient{auditorv1.NewAuditorServiceClient(aud), identity{a.serviceToken}},
			Negotiator:      negotiatorClient{negotiatorv1.NewNegotiatorServiceClient(neg), identity{a.serviceToken}},
			Scorer:          scorerClient{scorerv1.NewScorerServiceClient(sc), identity{a.serviceToken}},
			Approvals:       hilClient{hilv1.NewHILServiceClient(hilConn), identity{a.serviceToken}},
			DecisionTimeout: a.Cfg.DecisionTimeout(), Logger: a.Log, Registerer: reg,
			Engine: coordinator.EngineConfig{Lease: time.Duration(a.Cfg.Engine.Lease), Sweep: time.Duration(a.Cfg.Engine.Sweep)},
		})
		if err != nil {
			if relay != nil {
				relay.Close()
			}
			return server.Service{}, err
		}
		return svc.Definition(), nil
	}},
	fabric.Composer: {deps: []string{Auth}, service: func(_ context.Context, a *App, reg prometheus.Registerer) (server.Service, error) {
		// Auth depends on Precheck, so a.Simulation is known here: the simulation key in
		// data_dir, or the cosign key at COSIGN_KEY_PATH (COSIGN_PASSWORD) in production.
		signer, err := a.manifestSigner()
		if err != nil {
			return server.Service{}, err
		}
		keys, err := a.trustedKeys() // consent signatures (P1), as the coordinator verifies them
		if err != nil {
			return server.Service{}, err
		}
		svc, err := composer.New(composer.Deps{Model: a.modelProvider(), Signer: signer, TrustedKeys: keys, Logger: a.Log, Registerer: reg})
		if err != nil {
			return server.Service{}, err
		}
		return svc.Definition(), nil
	}},
	fabric.Negotiator: {deps: []string{Store, Auth}, service: func(ctx context.Context, a *App, reg prometheus.Registerer) (server.Service, error) {
		seed, err := regionkeys.LoadOrCreateSeed(a.Cfg.DataDir)
		if err != nil {
			return server.Service{}, err
		}
		regions, err := loadRegions(a.Cfg)
		if err != nil {
			return server.Service{}, err
		}
		registry, err := a.regionRegistry()
		if err != nil {
			return server.Service{}, err
		}
		fed, err := a.negotiatorFederation(ctx)
		if err != nil {
			return server.Service{}, err
		}
		svc, err := negotiator.NewService(negotiator.Deps{
			Store: a.Store, KeySeed: seed, RegionKeys: registry, Logger: a.Log,
			Registerer: reg, DecisionTimeout: a.Cfg.DecisionTimeout(), Regions: regions, Federation: fed,
		})
		if err != nil {
			return server.Service{}, err
		}
		// This process's own region, when it is one (federation.region).
		stopRegion, err := a.startRegion(reg)
		if err != nil {
			_ = svc.Close()
			return server.Service{}, err
		}
		// Negotiations left RUNNING by a previous process resume or expire now.
		if err := svc.Resume(ctx); err != nil {
			return server.Service{}, err
		}
		def := svc.Definition()
		if stopRegion != nil {
			closeSvc := def.Close
			def.Close = func() error { return errors.Join(stopRegion(), closeSvc()) }
		}
		return def, nil
	}},
	fabric.Scorer: {deps: []string{Store, Auth}, service: func(_ context.Context, a *App, _ prometheus.Registerer) (server.Service, error) {
		// The scorer reads the world through the same executors the coordinator enacts
		// with (a tenant's webhook, or the simulated world).
		executor, err := a.executor()
		if err != nil {
			return server.Service{}, err
		}
		return scorer.New(scorer.Deps{
			// What it scores, the votes and the history come in each request (from the
			// coordinator); the scorer owns no table.
			Model: a.modelProvider(), Metrics: a.metricSource(),
			World: executor, Logger: a.Log,
		}).Definition(), nil
	}},
	fabric.HIL: {deps: []string{Store, Auth}, service: func(ctx context.Context, a *App, _ prometheus.Registerer) (server.Service, error) {
		return a.hilService(ctx)
	}},
	fabric.Auditor: {deps: []string{Store, Auth}, service: func(_ context.Context, a *App, reg prometheus.Registerer) (server.Service, error) {
		// The checkpoint signing keys live beside the fabric's other keys: created on
		// first use in simulation, provisioned (cmd/audit-keygen) in production.
		keyDir := a.Cfg.DataDir + "/keys"
		w, err := a.auditWitness(keyDir)
		if err != nil {
			return server.Service{}, err
		}
		// The export reads decision records through the coordinator's API, never its tables.
		coord, err := a.Dial(fabric.Coordinator)
		if err != nil {
			return server.Service{}, err
		}
		svc, err := auditor.NewService(auditor.Deps{
			Store: a.Store, KeyDir: keyDir, Simulation: a.Simulation,
			Logger: a.Log, Registerer: reg,
			// Checkpoints are published outside the database too (docs/operations.md).
			CheckpointFile: a.Cfg.AuditCheckpointFile(), Witness: w,
			Decisions: decisionRecords(coordinatorv1.NewCoordinatorServiceClient(coord), identity{a.serviceToken}),
		})
		if err != nil {
			return server.Service{}, err
		}
		return svc.Definition(), nil
	}},
	fabric.Canary: {deps: []string{Store, Auth}, service: func(ctx context.Context, a *App, reg prometheus.Registerer) (server.Service, error) {
		// The rehearsals are open to the fabric's service identity alone.
		if a.ServiceSigner == nil {
			return server.Service{}, errors.New("sim-canary: dry runs call the coordinator, negotiator and scorer as the fabric's service identity: set auth.service_key_file (FABRIC_SERVICE_KEY_FILE)")
		}
		// Canary waves are judged on Prometheus when PROM_URL answers (after a wave has
		// run for the metrics' window), else on the simulated series (at once; faults
		// from FABRIC_SIM_METRIC_FAULTS, development only).
		series, settle, err := a.seriesSource(time.Duration(a.Cfg.Canary.Window))
		if err != nil {
			return server.Service{}, err
		}
		conns := map[string]grpc.ClientConnInterface{}
		for _, peer := range []string{fabric.Coordinator, fabric.Negotiator, fabric.Scorer, fabric.Auditor} {
			c, err := a.Dial(peer)
			if err != nil {
				return server.Service{}, err
			}
			conns[peer] = c
		}
		svc, err := canary.New(canary.Deps{
			Store:       a.Store,
			Coordinator: coordinatorv1.NewCoordinatorServiceClient(conns[fabric.Coordinator]),
			Negotiator:  negotiatorv1.NewNegotiatorServiceClient(conns[fabric.Negotiator]),
			Scorer:      scorerv1.NewScorerServiceClient(conns[fabric.Scorer]),
			Auditor:     auditorv1.NewAuditorServiceClient(conns[fabric.Auditor]),
			As:          identity{a.serviceToken}.as,
			Logger:      a.Log, Registerer: reg,
			Metrics: series, Settle: settle, Window: time.Duration(a.Cfg.Canary.Window), Step: time.Duration(a.Cfg.Canary.Step),
			Judge: a.Cfg.Canary.Judge.JudgeConfig(), TenantJudge: tenantJudges(a.Cfg.Canary),
		})
		if err != nil {
			return server.Service{}, err
		}
		replay, err := a.replayDeps()
		if err != nil {
			return server.Service{}, err
		}
		// Rollouts left RUNNING by a previous process go on.
		if err := svc.Resume(ctx); err != nil {
			return server.Service{}, err
		}
		return svc.WithReplay(replay).Definition(), nil
	}},
}

// Targets lists what `-target` accepts: "all" and each service, in start order.
func Targets() []string { return append([]string{All}, fabric.Names()...) }

// resolve returns the modules a target needs, dependencies before dependants.
func resolve(target string) ([]string, error) {
	roots := []string{target}
	if target == All {
		roots = fabric.Names()
	} else if _, ok := modules[target]; !ok || !fabric.IsService(target) {
		return nil, fmt.Errorf("unknown target %q (targets: %s)", target, strings.Join(Targets(), ", "))
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		deps := slices.Clone(modules[name].deps)
		sort.Strings(deps)
		for _, d := range deps {
			visit(d)
		}
		order = append(order, name)
	}
	for _, r := range roots {
		visit(r)
	}
	return order, nil
}

// Running is a started fabric: its servers and a way to stop it.
type Running struct {
	App     *App
	Servers map[string]*server.Server
	done    chan error
	cancel  context.CancelFunc
}

// Wait blocks until every server has stopped and returns the first error.
func (r *Running) Wait() error { return <-r.done }

// Stop shuts everything down gracefully and waits.
func (r *Running) Stop() error {
	r.cancel()
	return r.Wait()
}

// Start initialises the target's modules, binds every service's listeners and serves
// them in the background. It returns once all listeners are bound, so callers (tests,
// `make run`) can use the addresses at once.
func Start(ctx context.Context, cfg config.Config, out io.Writer) (*Running, error) {
	order, err := resolve(cfg.Target)
	if err != nil {
		return nil, err
	}
	a := &App{Cfg: cfg, Out: out}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(cfg.GCPercent)
	}
	ctx, cancel := context.WithCancel(ctx)
	servers := map[string]*server.Server{}
	fail := func(err error) (*Running, error) {
		for _, s := range servers {
			s.Stop()
		}
		cancel()
		a.close()
		return nil, err
	}
	for _, name := range order {
		if fabric.IsService(name) {
			a.serve(name) // its peers here call it in-process (Dial)
		}
	}
	var names []string
	for _, name := range order {
		m := modules[name]
		if m.init != nil {
			if err := m.init(ctx, a); err != nil {
				return fail(fmt.Errorf("module %s: %w", name, err))
			}
			continue
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		def, err := m.service(ctx, a, reg)
		if err != nil {
			return fail(fmt.Errorf("module %s: %w", name, err))
		}
		shared, err := a.quotaStore()
		if err != nil {
			if def.Close != nil {
				_ = def.Close()
			}
			return fail(err)
		}
		srv, err := server.New(ctx, def, server.Options{
			SharedQuota:     shared,
			Registry:        reg,
			Listen:          cfg.Services[name],
			Logger:          a.Log,
			Verifier:        a.Verifier,
			MaxRequestBytes: cfg.MaxRequestBytes,
			ShutdownTimeout: time.Duration(cfg.ShutdownTimeout),
			Health:          a.health,
			Admission:       cfg.Admission,
		})
		if err != nil {
			if def.Close != nil {
				_ = def.Close() // the service's background work, started by m.service
			}
			return fail(err)
		}
		servers[name] = srv
		a.bindLocal(name, srv)
		names = append(names, name)
	}
	r := &Running{App: a, Servers: servers, done: make(chan error, 1), cancel: cancel}
	go func() {
		errc := make(chan error, len(names))
		for _, n := range names {
			go func(s *server.Server) { errc <- s.Serve(ctx) }(servers[n])
		}
		var first error
		for range names {
			if err := <-errc; err != nil && first == nil {
				first = err
				cancel() // one server failing stops the process: never run half a fabric
			}
		}
		a.close()
		r.done <- first
	}()
	return r, nil
}

func (a *App) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
	a.closers = nil
}

// health reports the process-wide health: the store must answer.
func (a *App) health(ctx context.Context) server.HealthReport {
	rep := server.HealthReport{
		Status:           "ok",
		SimulationMode:   a.Simulation,
		PrecheckDecision: string(a.Precheck.Decision),
	}
	if a.Store != nil {
		rep.Store = a.Store.Backend()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := a.Store.Ping(pctx); err != nil {
			rep.Status = "degraded"
			rep.Checks = map[string]string{"store": "unreachable"}
		}
	}
	if c, _ := a.vault(); c != nil {
		if rep.Checks == nil {
			rep.Checks = map[string]string{}
		}
		rep.Checks["vault"] = a.vaultHealth(ctx, c)
	}
	return rep
}

// vaultHealthEvery is how long a Vault probe's answer is reused by GET /health.
const vaultHealthEvery = 15 * time.Second

// vaultHealth is "ok" or "unreachable", probing Vault at most every vaultHealthEvery.
// The keys were read at start and stay in use: an unreachable Vault is reported, not a
// reason to take the service out (a restart would fail).
func (a *App) vaultHealth(ctx context.Context, c *vault.Client) string {
	a.vaultHealthMu.Lock()
	defer a.vaultHealthMu.Unlock()
	if a.vaultHealthLast != "" && time.Since(a.vaultHealthAt) < vaultHealthEvery {
		return a.vaultHealthLast
	}
	vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	a.vaultHealthLast = "ok"
	if err := c.Ping(vctx); err != nil {
		a.vaultHealthLast = "unreachable"
	}
	a.vaultHealthAt = time.Now()
	return a.vaultHealthLast
}

func initTelemetry(ctx context.Context, a *App) error {
	a.Log = telemetry.NewLogger(a.Cfg.Telemetry, a.Out)
	tr, err := telemetry.SetupTracing(ctx, a.Cfg.Telemetry, "decision-fabric-"+a.Cfg.Target)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tr.Shutdown(sctx)
	})
	return nil
}

// initPrecheck runs the compliance precheck against the effective configuration,
// writes the reports, and refuses to start on BLOCK with what to fix.
func initPrecheck(ctx context.Context, a *App) error {
	rep := precheck.Run(ctx, PrecheckEnv(a.Cfg), precheck.Options{})
	if err := rep.WriteFiles(a.Cfg.ReportsDir); err != nil {
		a.Log.WarnContext(ctx, "precheck: could not write reports", "error", err)
	}
	a.Precheck = rep
	a.Simulation = rep.SimulationMode
	if err := rep.Err(); err != nil {
		return err
	}
	a.Log.InfoContext(ctx, "precheck", "decision", rep.Decision, "simulation_mode", rep.SimulationMode,
		"missing", strings.Join(rep.Missing, ","), "simulated_providers", strings.Join(rep.SimulatedProviders, ","))
	return nil
}

// PrecheckEnv maps the effective configuration (file and environment) to the
// precheck's inputs.
func PrecheckEnv(c config.Config) precheck.Env {
	i := c.Integrations
	return precheck.Env{
		PostgresDSN:       i.PostgresDSN.Reveal(),
		VaultAddr:         i.VaultAddr,
		CosignKeyPath:     i.CosignKeyPath,
		GlobalRegistryURL: i.GlobalRegistryURL,
		FederationToken:   i.FederationToken.Reveal(),
		SimulationMode:    c.SimulationMode,
		RedisURL:          i.RedisURL.Reveal(),
		KafkaURL:          i.KafkaURL.Reveal(),
		PromURL:           i.PromURL,
		NeuralFabricURL:   i.NeuralFabricURL,
		QuantumProvider:   i.QuantumProvider,
		DecisionTimeoutMS: fmt.Sprint(c.DecisionTimeoutMS),
		CosignVaultPath:   i.Vault.CosignKeyPath,
		// The precheck reads the Vault signing key as the fabric will (vault()).
		VaultToken:     os.Getenv("VAULT_TOKEN"),
		VaultTokenFile: i.Vault.TokenFile,
		VaultKVMount:   i.Vault.KVMount,
	}
}

func initStore(ctx context.Context, a *App) error {
	dsn := a.Cfg.Integrations.PostgresDSN.Reveal()
	if dsn != "" && a.Simulation && !a.precheckOK(precheck.CheckPostgres) {
		// The precheck found the database unusable and chose simulation, which runs
		// on the embedded store: do what it announced rather than fail on the DSN.
		a.Log.WarnContext(ctx, "POSTGRES_DSN is set but the precheck found it unusable; using the embedded store")
		dsn = ""
	}
	dir := a.Cfg.DataDir
	if a.Cfg.StoreDir != "" {
		dir = a.Cfg.StoreDir
	}
	st, err := store.Open(ctx, store.Config{PostgresDSN: dsn, DataDir: dir})
	if err != nil {
		return err
	}
	a.Store = st
	a.closers = append(a.closers, st.Close)
	a.Log.InfoContext(ctx, "store ready", "backend", st.Backend())
	return nil
}

// precheckOK reports whether the precheck found dependency name usable.
func (a *App) precheckOK(name string) bool {
	for _, c := range a.Precheck.Checks {
		if c.Name == name {
			return c.Status == precheck.StatusOK
		}
	}
	return false
}

// initAuth loads the token verification key. Without auth.public_key_file the
// development key in data_dir is used, and only in simulation: production must be
// configured with the identity provider's key.
func initAuth(_ context.Context, a *App) error {
	var pub crypto.PublicKey
	if path := a.Cfg.Auth.PublicKeyFile; path != "" {
		k, err := auth.LoadPublicKeyFile(path)
		if err != nil {
			return err
		}
		pub = k
	} else {
		if !a.Simulation {
			return errors.New("auth.public_key_file is required outside simulation mode: set it to your identity provider's PEM public key")
		}
		key, err := auth.LoadOrCreateDevKey(a.Cfg.DataDir)
		if err != nil {
			return err
		}
		pub = key.Public()
		a.DevSigner = auth.NewSigner(key, a.Cfg.Auth.Issuer, a.Cfg.Auth.Audience)
	}
	v, err := auth.NewVerifier(pub, a.Cfg.Auth.Issuer, a.Cfg.Auth.Audience)
	if err != nil {
		return err
	}
	// The service role comes only from the service key: auth.service_key_file, or in
	// simulation a development service key (not the development token key, so a
	// `fabric token` never carries it).
	var serviceKey ed25519.PrivateKey
	if path := a.Cfg.Integrations.Vault.ServiceKeyPath; path != "" {
		pemKey, err := a.vaultField(path, "key", false)
		if err != nil {
			return fmt.Errorf("integrations.vault.service_key_path: %w", err)
		}
		if serviceKey, err = auth.ParsePrivateKeyPEM("vault "+path, pemKey); err != nil {
			return fmt.Errorf("integrations.vault.service_key_path: %w", err)
		}
		a.Log.Info("auth: service key read from Vault", "path", path)
	} else if path := a.Cfg.Auth.ServiceKeyFile; path != "" {
		if serviceKey, err = auth.LoadPrivateKeyFile(path); err != nil {
			return fmt.Errorf("auth.service_key_file: %w", err)
		}
	} else if a.Simulation {
		if serviceKey, err = auth.LoadOrCreateDevServiceKey(a.Cfg.DataDir); err != nil {
			return err
		}
	}
	if serviceKey != nil {
		v.TrustServiceKey(serviceKey.Public().(ed25519.PublicKey))
		a.ServiceSigner = auth.NewServiceSigner(serviceKey, a.Cfg.Auth.Issuer, a.Cfg.Auth.Audience)
	}
	a.Verifier = v
	return nil
}

// policy loads the decision policy: policy_file, or the built-in default.
func (a *App) policy() (*policy.Engine, error) {
	e := policy.Default()
	if path := a.Cfg.PolicyFile; path != "" {
		var err error
		if e, err = policy.Load(path); err != nil {
			return nil, err
		}
	}
	return e.WithDefaultDecisionTimeout(a.Cfg.DecisionTimeout()), nil
}

// manifestSigner is the fabric's cosign-format signing key, loaded once: the simulation
// key in data_dir, or COSIGN_KEY_PATH (password in COSIGN_PASSWORD) in production.
func (a *App) manifestSigner() (signing.Signer, error) {
	a.signerOnce.Do(func() {
		if path := a.Cfg.Integrations.Vault.CosignKeyPath; path != "" && !a.Simulation {
			a.signer, a.signerErr = a.vaultCosignKey(path)
			return
		}
		if a.Simulation || a.Cfg.Integrations.CosignKeyPath == "" {
			a.signer, a.signerErr = signing.LoadOrCreateSimulationKey(a.Cfg.DataDir)
			return
		}
		a.signer, a.signerErr = signing.LoadCosignKey(a.Cfg.Integrations.CosignKeyPath, []byte(os.Getenv("COSIGN_PASSWORD")))
	})
	return a.signer, a.signerErr
}

// vaultCosignKey reads the cosign signing key from Vault: field "key" (the cosign PEM)
// and field "password" (else COSIGN_PASSWORD).
func (a *App) vaultCosignKey(path string) (signing.Signer, error) {
	keyPEM, err := a.vaultField(path, "key", false)
	if err != nil {
		return nil, fmt.Errorf("integrations.vault.cosign_key_path: %w", err)
	}
	password, err := a.vaultField(path, "password", false)
	if err != nil {
		if !errors.Is(err, vault.ErrNoField) {
			return nil, fmt.Errorf("integrations.vault.cosign_key_path: %w", err)
		}
		password = []byte(os.Getenv("COSIGN_PASSWORD"))
	}
	s, err := signing.ParseCosignKey(keyPEM, password)
	if err != nil {
		return nil, fmt.Errorf("integrations.vault.cosign_key_path %s: %w", path, err)
	}
	a.Log.Info("signing: cosign key read from Vault", "path", path, "key_id", s.KeyID())
	return s, nil
}

// regions is the negotiator's region set: regions_file, or the built-in one.
func loadRegions(cfg config.Config) (*negotiator.RegionsConfig, error) {
	if path := cfg.RegionsFile; path != "" {
		return negotiator.LoadRegions(path)
	}
	return negotiator.DefaultRegions(), nil
}

// regionRegistry is the region key registry, loaded once and shared by the negotiator
// (its regions must sign with these keys) and the coordinator (quorum certificates are
// verified with them): region_keys_dir, or in simulation the keys derived from the
// negotiator's seed in data_dir for every configured region.
func (a *App) regionRegistry() (*regionkeys.Registry, error) {
	a.regionKeysOnce.Do(func() {
		if a.Cfg.Federation.Enabled { // the regions run as processes: their registry's keys
			a.regionKeys, a.regionKeysErr = a.federationRegionKeys()
			return
		}
		if a.Cfg.RegionKeysDir == "" && !a.Simulation {
			a.regionKeysErr = errors.New("region_keys_dir (FABRIC_REGION_KEYS_DIR) is required outside simulation mode: " +
				"a folder of <region>.pub Ed25519 public keys the regions sign their votes with " +
				"(`fabric region-keys export -out DIR` writes the simulated regions' keys)")
			return
		}
		a.regionKeys, a.regionKeysErr = RegionRegistry(a.Cfg)
	})
	return a.regionKeys, a.regionKeysErr
}

// RegionRegistry is the region key registry cfg configures: with federation.enabled
// the keys of the federation registry; else the folder region_keys_dir when set, else the keys derived from the negotiator's seed in
// data_dir (created on first use) for every configured region.
func RegionRegistry(cfg config.Config) (*regionkeys.Registry, error) {
	if cfg.Federation.Enabled { // regions as processes: the federation registry's keys
		reg, err := LoadFederationRegistry(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		return reg.Keys()
	}
	if dir := cfg.RegionKeysDir; dir != "" {
		return regionkeys.LoadDir(dir)
	}
	regions, err := loadRegions(cfg)
	if err != nil {
		return nil, err
	}
	seed, err := regionkeys.LoadOrCreateSeed(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(regions.Regions))
	for _, r := range regions.Regions {
		names = append(names, r.Name)
	}
	return regionkeys.FromSeed(seed, names)
}

// trustedKeys is the keyring of signers the coordinator trusts: the fabric's own key
// and every trusted_keys file.
func (a *App) trustedKeys() (*signing.Keyring, error) {
	ring := &signing.Keyring{}
	s, err := a.manifestSigner()
	if err != nil {
		return nil, err
	}
	if _, err := ring.Add(s.PublicKeyPEM()); err != nil {
		return nil, err
	}
	if err := ring.AddFiles(a.Cfg.TrustedKeys...); err != nil {
		return nil, fmt.Errorf("trusted_keys: %w", err)
	}
	return ring, nil
}

// executor is the simulated world, with each tenant configured under `executors` sent to
// its webhook instead.
func (a *App) executor() (world.Executor, error) {
	r := world.Router{Default: world.NewSimulated(a.Store), PerTenant: map[string]world.Executor{}}
	for tenant, e := range a.Cfg.Executors {
		secret, ok := LookupEnv(e.SecretEnv)
		if !ok || secret == "" {
			return nil, fmt.Errorf("executors.%s: environment variable %s (the webhook's HMAC secret) is not set", tenant, e.SecretEnv)
		}
		r.PerTenant[tenant] = &world.Webhook{URL: e.WebhookURL, Secret: []byte(secret)}
	}
	return r, nil
}

// modelProvider is the Neural Fabric client when NEURAL_FABRIC_URL is set and the
// precheck reached it, the simulated model otherwise.
func (a *App) modelProvider() model.Provider {
	if u := a.Cfg.Integrations.NeuralFabricURL; u != "" && !slices.Contains(a.Precheck.SimulatedProviders, precheck.CheckNeuralFabric) {
		return model.NewHTTP(u, nil)
	}
	return model.NewSimulated()
}

// metricSource is Prometheus when PROM_URL is set and the precheck reached it, the
// simulated source otherwise.
func (a *App) metricSource() metricsource.Source {
	if u := a.Cfg.Integrations.PromURL; u != "" && !slices.Contains(a.Precheck.SimulatedProviders, precheck.CheckPrometheus) {
		return metricsource.NewPrometheus(u, nil)
	}
	return metricsource.NewSimulated()
}

// LookupEnv is os.LookupEnv, named for callers that pass it to config.Load.
var LookupEnv = os.LookupEnv

// seriesSource is where canary waves read their metrics: Prometheus when PROM_URL is set
// and the precheck reached it (a wave then runs for the metrics' window before it is
// judged), the simulated series otherwise (judged at once), with the faults of
// FABRIC_SIM_METRIC_FAULTS (development and tests only).
func (a *App) seriesSource(window time.Duration) (metricsource.SeriesSource, time.Duration, error) {
	settle := time.Duration(a.Cfg.Canary.Settle)
	if src, ok := a.metricSource().(metricsource.SeriesSource); ok {
		if settle == 0 {
			settle = cmp.Or(window, 10*time.Minute)
		}
		return src, settle, nil
	}
	faults, err := metricsource.ParseFaults(os.Getenv(metricsource.FaultsEnv))
	if err != nil {
		return nil, 0, err
	}
	return metricsource.NewSimulatedSeries(faults), settle, nil
}

// tenantJudges are the per-tenant judgements of canary.tenants.
func tenantJudges(c config.Canary) map[string]judge.Config {
	out := make(map[string]judge.Config, len(c.Tenants))
	for tenant, j := range c.Tenants {
		out[tenant] = j.JudgeConfig()
	}
	return out
}
