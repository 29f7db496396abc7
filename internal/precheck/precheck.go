// Package precheck implements the phase I.4 compliance precheck of the
// Decision Fabric: before the fabric starts it inspects the environment
// variables of the spec, contacts every configured dependency with a bounded
// timeout and decides whether the fabric may PROCEED, must PROCEED_SIMULATION
// or is BLOCKed.
//
// The precheck never prints a secret: DSN passwords, tokens, URL userinfo
// passwords and query values are redacted from every string it produces.
// See docs/compliance-precheck_I.4.md for the operator documentation.
package precheck

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Decision is the outcome of the precheck.
type Decision string

// The three possible decisions.
const (
	// Proceed: every critical check passed and no provider is simulated.
	Proceed Decision = "PROCEED"
	// ProceedSimulation: the fabric may start, but with SIMULATION_MODE=true.
	ProceedSimulation Decision = "PROCEED_SIMULATION"
	// Block: the fabric must not start; Report.Reasons says what to fix.
	Block Decision = "BLOCK"
)

// Status is the result of one check.
type Status string

// Check statuses.
const (
	StatusOK          Status = "ok"
	StatusMissing     Status = "missing"     // the environment variable is unset or empty
	StatusUnreachable Status = "unreachable" // configured, but the dependency did not answer (in time)
	StatusInvalid     Status = "invalid"     // configured, but the value or the answer is unusable
	StatusSimulated   Status = "simulated"   // explicitly configured as simulated
	// StatusUnverified: configured, but the precheck has no means to check it (a
	// signing key in Vault and no Vault token); a critical one is not ok.
	StatusUnverified Status = "unverified"
)

// Names of the environment variables read by the precheck.
const (
	EnvPostgresDSN       = "POSTGRES_DSN"
	EnvVaultAddr         = "VAULT_ADDR"
	EnvCosignKeyPath     = "COSIGN_KEY_PATH"
	EnvGlobalRegistryURL = "GLOBAL_REGISTRY_URL"
	EnvFederationToken   = "FEDERATION_TOKEN"
	EnvSimulationMode    = "SIMULATION_MODE"
	EnvRedisURL          = "REDIS_URL"
	EnvKafkaURL          = "KAFKA_URL"
	EnvPromURL           = "PROM_URL"
	EnvNeuralFabricURL   = "NEURAL_FABRIC_URL"
	EnvQuantumProvider   = "QUANTUM_PROVIDER"
	EnvDecisionTimeoutMS = "PHASE_I4_DECISION_TIMEOUT_MS"
)

// Names of the checks, as they appear in Check.Name and in
// Report.SimulatedProviders.
const (
	CheckPostgres        = "postgres"
	CheckVault           = "vault"
	CheckCosign          = "cosign"
	CheckGlobalRegistry  = "global_registry"
	CheckFederationToken = "federation_token"
	CheckRedis           = "redis"
	CheckKafka           = "kafka"
	CheckPrometheus      = "prometheus"
	CheckNeuralFabric    = "neural_fabric"
	CheckQuantumProvider = "quantum_provider"
	CheckSimulationMode  = "simulation_mode"
	CheckDecisionTimeout = "decision_timeout"
)

// DefaultDecisionTimeoutMS is used when PHASE_I4_DECISION_TIMEOUT_MS is unset.
const DefaultDecisionTimeoutMS int64 = 30000

// DefaultCheckTimeout is the per-check timeout when Options.Timeout is zero.
const DefaultCheckTimeout = 2 * time.Second

// Check is the result of one precheck item.
type Check struct {
	Name      string `json:"name"`
	EnvVar    string `json:"env_var"`
	Critical  bool   `json:"critical"`
	Status    Status `json:"status"`
	Detail    string `json:"detail"`           // human readable; never contains a secret value
	Target    string `json:"target,omitempty"` // redacted form of what was contacted
	LatencyMS int64  `json:"latency_ms"`
}

// Report is the outcome of a precheck run. It is written to
// reports/I.4_precheck.json by WriteFiles.
type Report struct {
	Decision Decision `json:"decision"`
	// SimulationMode is the mode the fabric must run in: true exactly when
	// Decision is PROCEED_SIMULATION.
	SimulationMode     bool      `json:"simulation_mode"`
	Reasons            []string  `json:"reasons"`             // why this decision; for BLOCK, what to fix
	Missing            []string  `json:"missing"`             // spec env vars that are unset (defaulted ones excluded)
	SimulatedProviders []string  `json:"simulated_providers"` // optional providers that will be simulated
	Checks             []Check   `json:"checks"`
	DecisionTimeoutMS  int64     `json:"decision_timeout_ms"` // 0 when PHASE_I4_DECISION_TIMEOUT_MS is invalid
	GeneratedAt        time.Time `json:"generated_at"`
}

// Env is the set of spec variables. Build it with FromEnviron so
// that tests do not need to touch the real process environment.
type Env struct {
	PostgresDSN       string
	VaultAddr         string
	CosignKeyPath     string
	GlobalRegistryURL string
	FederationToken   string
	SimulationMode    string
	RedisURL          string
	KafkaURL          string
	PromURL           string
	NeuralFabricURL   string
	QuantumProvider   string
	DecisionTimeoutMS string
	// CosignVaultPath is the KV v2 path the signing key is read from instead of
	// COSIGN_KEY_PATH (integrations.vault.cosign_key_path; configuration only).
	CosignVaultPath string
	// VaultToken (VAULT_TOKEN), else the token in VaultTokenFile
	// (integrations.vault.token_file), reads CosignVaultPath from the KV v2 mount
	// VaultKVMount (integrations.vault.kv_mount; empty: vault.DefaultMount).
	VaultToken     string
	VaultTokenFile string
	VaultKVMount   string
}

// FromEnviron reads the spec variables through lookup (os.LookupEnv has the
// right signature). A nil lookup yields an empty Env. Values are trimmed of
// surrounding white space; a variable set to an empty string counts as unset.
func FromEnviron(lookup func(string) (string, bool)) Env {
	get := func(name string) string {
		if lookup == nil {
			return ""
		}
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	return Env{
		PostgresDSN:       get(EnvPostgresDSN),
		VaultAddr:         get(EnvVaultAddr),
		CosignKeyPath:     get(EnvCosignKeyPath),
		GlobalRegistryURL: get(EnvGlobalRegistryURL),
		FederationToken:   get(EnvFederationToken),
		SimulationMode:    get(EnvSimulationMode),
		RedisURL:          get(EnvRedisURL),
		KafkaURL:          get(EnvKafkaURL),
		PromURL:           get(EnvPromURL),
		NeuralFabricURL:   get(EnvNeuralFabricURL),
		QuantumProvider:   get(EnvQuantumProvider),
		DecisionTimeoutMS: get(EnvDecisionTimeoutMS),
	}
}

// Options tunes a precheck run.
type Options struct {
	// Timeout bounds each check; checks run concurrently, so it also bounds
	// the whole run (plus a small grace period). Default 2s.
	Timeout time.Duration
	// HTTPClient is used for the HTTP checks. The default client does not
	// follow redirects (a 3xx answer already proves reachability).
	HTTPClient *http.Client
}

// spec describes one dependency check.
type spec struct {
	name     string
	envVar   string
	critical bool
	value    string
	run      func(ctx context.Context, value string) Check
}

// triState is the parsed SIMULATION_MODE.
type triState int

const (
	triUnset triState = iota
	triTrue
	triFalse
	triInvalid
)

func parseSimulationMode(v string) triState {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return triUnset
	case "true", "1":
		return triTrue
	case "false", "0":
		return triFalse
	default:
		return triInvalid
	}
}

// parseDecisionTimeout returns the decision timeout in milliseconds, or
// ok=false when v is not a positive integer.
func parseDecisionTimeout(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultDecisionTimeoutMS, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// Run performs every check concurrently, each bounded by opts.Timeout, and
// derives the decision. It never returns an error: every problem is a check
// result. The returned report contains no secret value.
func Run(ctx context.Context, env Env, opts Options) Report {
	if ctx == nil {
		ctx = context.Background()
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	client := opts.HTTPClient
	if client == nil {
		c := newDefaultHTTPClient()
		defer c.CloseIdleConnections()
		client = c
	}
	ck := &checker{client: client, va: vaultAccess{
		Addr: env.VaultAddr, Token: env.VaultToken, TokenFile: env.VaultTokenFile, KVMount: env.VaultKVMount}}

	cosignValue, cosignRun := env.CosignKeyPath, ck.cosign
	if cosignValue == "" && env.CosignVaultPath != "" && env.VaultAddr != "" {
		cosignValue, cosignRun = env.CosignVaultPath, ck.cosignVault
	}
	specs := []spec{
		{CheckPostgres, EnvPostgresDSN, true, env.PostgresDSN, ck.postgres},
		{CheckVault, EnvVaultAddr, true, env.VaultAddr, ck.vault},
		{CheckCosign, EnvCosignKeyPath, true, cosignValue, cosignRun},
		{CheckGlobalRegistry, EnvGlobalRegistryURL, true, env.GlobalRegistryURL, ck.registry},
		{CheckFederationToken, EnvFederationToken, true, env.FederationToken, ck.federationToken},
		{CheckRedis, EnvRedisURL, false, env.RedisURL, ck.redis},
		{CheckKafka, EnvKafkaURL, false, env.KafkaURL, ck.kafka},
		{CheckPrometheus, EnvPromURL, false, env.PromURL, ck.prometheus},
		{CheckNeuralFabric, EnvNeuralFabricURL, false, env.NeuralFabricURL, ck.neuralFabric},
		{CheckQuantumProvider, EnvQuantumProvider, false, env.QuantumProvider, ck.quantum},
	}

	checks := runChecks(ctx, specs, timeout)

	simMode := parseSimulationMode(env.SimulationMode)
	checks = append(checks, simulationModeCheck(simMode))
	decisionTimeout, timeoutOK := parseDecisionTimeout(env.DecisionTimeoutMS)
	checks = append(checks, decisionTimeoutCheck(env.DecisionTimeoutMS, decisionTimeout, timeoutOK))

	r := decide(checks, simMode, timeoutOK)
	r.DecisionTimeoutMS = decisionTimeout
	r.GeneratedAt = time.Now().UTC()

	secrets := collectSecrets(env)
	r.scrub(secrets)
	return r
}

type indexedCheck struct {
	i int
	c Check
}

// runChecks runs specs concurrently. Each check gets its own context bounded
// by timeout; a check that overruns its deadline by more than a grace period
// (it should not: every check honours its context) is reported unreachable
// so that Run stays bounded.
func runChecks(ctx context.Context, specs []spec, timeout time.Duration) []Check {
	results := make([]Check, len(specs))
	done := make([]bool, len(specs))
	ch := make(chan indexedCheck, len(specs)) // buffered: late senders never block
	pending := 0
	for i, s := range specs {
		base := Check{Name: s.name, EnvVar: s.envVar, Critical: s.critical}
		if s.value == "" {
			base.Status = StatusMissing
			if s.critical {
				base.Detail = s.envVar + " is not set"
			} else {
				base.Detail = s.envVar + " is not set; provider will be simulated"
			}
			results[i] = base
			done[i] = true
			continue
		}
		pending++
		go func(i int, s spec, base Check) {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			c := s.run(cctx, s.value)
			c.Name, c.EnvVar, c.Critical = base.Name, base.EnvVar, base.Critical
			c.LatencyMS = time.Since(start).Milliseconds()
			ch <- indexedCheck{i, c}
		}(i, s, base)
	}

	grace := time.NewTimer(timeout + timeout/2 + 250*time.Millisecond)
	defer grace.Stop()
	for pending > 0 {
		select {
		case r := <-ch:
			results[r.i] = r.c
			done[r.i] = true
			pending--
		case <-grace.C:
			for i, s := range specs {
				if !done[i] {
					results[i] = Check{
						Name: s.name, EnvVar: s.envVar, Critical: s.critical,
						Status:    StatusUnreachable,
						Detail:    fmt.Sprintf("check did not finish within %s", timeout),
						LatencyMS: timeout.Milliseconds(),
					}
				}
			}
			pending = 0
		}
	}
	return results
}

// simulationModeCheck reports SIMULATION_MODE; the raw value is deliberately
// not echoed.
func simulationModeCheck(mode triState) Check {
	c := Check{Name: CheckSimulationMode, EnvVar: EnvSimulationMode, Status: StatusOK}
	switch mode {
	case triUnset:
		c.Detail = "not set; the precheck decides the mode"
	case triTrue:
		c.Detail = "true: simulation requested explicitly"
	case triFalse:
		c.Detail = "false: production requested explicitly; any critical failure blocks"
	default:
		c.Status = StatusInvalid
		c.Detail = "unsupported value; accepted: true, false, 1, 0 (case-insensitive) or unset"
	}
	return c
}

func decisionTimeoutCheck(raw string, ms int64, ok bool) Check {
	c := Check{Name: CheckDecisionTimeout, EnvVar: EnvDecisionTimeoutMS, Status: StatusOK}
	switch {
	case !ok:
		c.Status = StatusInvalid
		c.Detail = "not a positive integer of milliseconds"
	case strings.TrimSpace(raw) == "":
		c.Detail = fmt.Sprintf("not set; default %d ms", ms)
	default:
		c.Detail = fmt.Sprintf("%d ms", ms)
	}
	return c
}

// decide applies the decision table (see docs/compliance-precheck_I.4.md).
func decide(checks []Check, simMode triState, timeoutOK bool) Report {
	r := Report{
		Reasons:            []string{},
		Missing:            []string{},
		SimulatedProviders: []string{},
		Checks:             checks,
	}

	var blockers []string
	var degraded []string       // informational reasons for simulation
	var criticalFailed []string // "ENV (status)"

	for _, c := range checks {
		if c.Name == CheckSimulationMode || c.Name == CheckDecisionTimeout {
			continue
		}
		if c.Status == StatusMissing {
			r.Missing = append(r.Missing, c.EnvVar)
		}
		if c.Critical {
			if c.Status == StatusOK {
				continue
			}
			criticalFailed = append(criticalFailed, fmt.Sprintf("%s (%s)", c.EnvVar, c.Status))
			if c.Name == CheckGlobalRegistry && c.Status != StatusMissing {
				blockers = append(blockers, fmt.Sprintf(
					"%s is configured but the global registry is %s (%s): fix the URL or the registry, or unset %s to run in simulation",
					EnvGlobalRegistryURL, c.Status, c.Detail, EnvGlobalRegistryURL))
				continue
			}
			if c.Status == StatusMissing {
				degraded = append(degraded, fmt.Sprintf("critical %s is not set: %s runs simulated", c.EnvVar, c.Name))
			} else {
				degraded = append(degraded, fmt.Sprintf("critical check %s is %s (%s): %s runs simulated", c.Name, c.Status, c.Detail, c.Name))
			}
			continue
		}
		switch c.Status {
		case StatusOK:
		case StatusSimulated:
			r.SimulatedProviders = append(r.SimulatedProviders, c.Name)
			degraded = append(degraded, fmt.Sprintf("optional provider %s is configured as simulated", c.Name))
		default:
			r.SimulatedProviders = append(r.SimulatedProviders, c.Name)
			degraded = append(degraded, fmt.Sprintf("optional provider %s is %s (%s): it will be simulated", c.Name, c.Status, c.Detail))
		}
	}

	if simMode == triInvalid {
		blockers = append(blockers, fmt.Sprintf(
			"%s has an unsupported value: set it to true, false, 1 or 0, or unset it", EnvSimulationMode))
	}
	if !timeoutOK {
		blockers = append(blockers, fmt.Sprintf(
			"set %s to a positive integer of milliseconds (default %d)", EnvDecisionTimeoutMS, DefaultDecisionTimeoutMS))
	}
	if simMode == triFalse && len(criticalFailed) > 0 {
		blockers = append(blockers, fmt.Sprintf(
			"%s=false requests production but critical checks failed: %s; fix them, or set %s=true to run in simulation",
			EnvSimulationMode, strings.Join(criticalFailed, ", "), EnvSimulationMode))
	}

	switch {
	case len(blockers) > 0:
		r.Decision = Block
		r.Reasons = blockers
	case simMode == triTrue:
		r.Decision = ProceedSimulation
		r.Reasons = append([]string{EnvSimulationMode + "=true requested explicitly"}, degraded...)
	case len(criticalFailed) > 0 || len(r.SimulatedProviders) > 0:
		r.Decision = ProceedSimulation
		r.Reasons = degraded
		if simMode == triFalse {
			// Only optional providers failed (critical ones would have
			// blocked): say so, so that the downgrade is never silent.
			r.Reasons = append([]string{fmt.Sprintf(
				"%s=false: every critical dependency is real, but optional providers are simulated (%s); configure them for a full PROCEED",
				EnvSimulationMode, strings.Join(r.SimulatedProviders, ", "))}, degraded...)
		}
	default:
		r.Decision = Proceed
		r.Reasons = []string{"all critical checks passed and no provider is simulated"}
	}
	r.SimulationMode = r.Decision == ProceedSimulation
	return r
}

// collectSecrets gathers every secret value of env for the final scrub.
func collectSecrets(env Env) *secretSet {
	s := newSecretSet()
	s.add(env.FederationToken)
	s.add(env.VaultToken)
	for _, p := range postgresSecrets(env.PostgresDSN) {
		s.add(p)
	}
	for _, u := range []string{env.VaultAddr, env.GlobalRegistryURL, env.RedisURL, env.PromURL, env.NeuralFabricURL, env.QuantumProvider} {
		s.addURL(u)
	}
	for _, b := range strings.Split(env.KafkaURL, ",") {
		b = strings.TrimSpace(b)
		if !strings.Contains(b, "://") {
			b = "kafka://" + b
		}
		s.addURL(b)
	}
	return s
}

// scrub removes every secret from the human readable strings of r.
func (r *Report) scrub(s *secretSet) {
	for i := range r.Checks {
		r.Checks[i].Detail = s.scrub(r.Checks[i].Detail)
		r.Checks[i].Target = s.scrub(r.Checks[i].Target)
	}
	for i := range r.Reasons {
		r.Reasons[i] = s.scrub(r.Reasons[i])
	}
}
