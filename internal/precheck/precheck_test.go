package precheck

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var criticalVars = []string{EnvPostgresDSN, EnvVaultAddr, EnvCosignKeyPath, EnvGlobalRegistryURL, EnvFederationToken}

var optionalProviders = []string{CheckRedis, CheckKafka, CheckPrometheus, CheckNeuralFabric, CheckQuantumProvider}

func TestRunAllUnsetProceedsInSimulation(t *testing.T) {
	t.Parallel()
	r := Run(context.Background(), Env{}, Options{})

	require.Equal(t, ProceedSimulation, r.Decision)
	require.True(t, r.SimulationMode)
	require.NoError(t, r.Err())
	require.Subset(t, r.Missing, criticalVars)
	require.Equal(t, criticalVars, r.Missing[:len(criticalVars)], "critical vars come first, in spec order")
	require.ElementsMatch(t, optionalProviders, r.SimulatedProviders)
	require.Equal(t, DefaultDecisionTimeoutMS, r.DecisionTimeoutMS)
	require.NotEmpty(t, r.Reasons)
	require.False(t, r.GeneratedAt.IsZero())
	require.Len(t, r.Checks, 12)
	for _, c := range r.Checks {
		if c.Name == CheckSimulationMode || c.Name == CheckDecisionTimeout {
			require.Equal(t, StatusOK, c.Status, c.Name)
			continue
		}
		require.Equal(t, StatusMissing, c.Status, c.Name)
		require.Contains(t, c.Detail, c.EnvVar)
	}
}

func TestRunRegistryClosedPortBlocks(t *testing.T) {
	t.Parallel()
	env := Env{GlobalRegistryURL: "http://" + closedAddr(t) + "/v2/"}
	r := Run(context.Background(), env, Options{Timeout: 2 * time.Second})

	require.Equal(t, Block, r.Decision)
	require.False(t, r.SimulationMode)
	require.Equal(t, StatusUnreachable, checkByName(t, r, CheckGlobalRegistry).Status)
	err := r.Err()
	require.Error(t, err)
	require.Contains(t, err.Error(), EnvGlobalRegistryURL)
	require.NotContains(t, r.Missing, EnvGlobalRegistryURL)
}

func TestRunEverythingHealthyProceeds(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	env := healthyEnv(t)

	r := Run(context.Background(), env, Options{Timeout: 5 * time.Second})

	for _, c := range r.Checks {
		require.Equal(t, StatusOK, c.Status, "%s: %s", c.Name, c.Detail)
	}
	require.Equal(t, Proceed, r.Decision, r.Reasons)
	require.False(t, r.SimulationMode)
	require.NoError(t, r.Err())
	require.Empty(t, r.Missing)
	require.Empty(t, r.SimulatedProviders)
	require.Equal(t, "postgres://postgres@127.0.0.1:5432/postgres", checkByName(t, r, CheckPostgres).Target)
}

func TestRunSimulationModeFalseWithMissingBlocks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
	}{
		{"false", "false"},
		{"FALSE", "FALSE"},
		{"zero", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Run(context.Background(), Env{SimulationMode: tc.value}, Options{})
			require.Equal(t, Block, r.Decision)
			require.Error(t, r.Err())
			require.Contains(t, r.Err().Error(), EnvSimulationMode+"=false")
			for _, v := range criticalVars {
				require.Contains(t, r.Err().Error(), v, "the fix list names every failing critical var")
			}
			require.Subset(t, r.Missing, criticalVars)
		})
	}
}

func TestRunSimulationModeFalseWithCriticalUnreachableBlocks(t *testing.T) {
	t.Parallel()
	// Everything but Postgres answers; Postgres points at a closed port.
	env := healthyEnv(t)
	env.PostgresDSN = "postgres://fabric@" + closedAddr(t) + "/fabric?sslmode=disable"
	env.SimulationMode = "false"

	r := Run(context.Background(), env, Options{Timeout: 2 * time.Second})
	require.Equal(t, Block, r.Decision)
	require.Equal(t, StatusUnreachable, checkByName(t, r, CheckPostgres).Status)
	require.Contains(t, r.Err().Error(), EnvPostgresDSN)

	// Without the explicit "false" the same environment degrades instead.
	env.SimulationMode = ""
	r = Run(context.Background(), env, Options{Timeout: 2 * time.Second})
	require.Equal(t, ProceedSimulation, r.Decision)
	require.NoError(t, r.Err())
}

func TestRunSimulationModeTrueForcesSimulation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
	}{
		{"true", "true"},
		{"True", "True"},
		{"one", "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := healthyEnv(t)
			env.SimulationMode = tc.value
			r := Run(context.Background(), env, Options{Timeout: 5 * time.Second})

			require.Equal(t, ProceedSimulation, r.Decision)
			require.True(t, r.SimulationMode)
			require.NoError(t, r.Err())
			require.Contains(t, r.Reasons[0], "SIMULATION_MODE=true")
			// The checks still ran and are reported.
			require.Equal(t, StatusOK, checkByName(t, r, CheckGlobalRegistry).Status)
			require.Equal(t, StatusOK, checkByName(t, r, CheckVault).Status)
			require.Equal(t, StatusOK, checkByName(t, r, CheckRedis).Status)
			require.Empty(t, r.SimulatedProviders)
		})
	}
}

func TestRunInvalidConfigBlocks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		env       Env
		check     string
		wantInErr string
	}{
		{"timeout not a number", Env{DecisionTimeoutMS: "abc"}, CheckDecisionTimeout, "set PHASE_I4_DECISION_TIMEOUT_MS to a positive integer of milliseconds"},
		{"timeout zero", Env{DecisionTimeoutMS: "0"}, CheckDecisionTimeout, EnvDecisionTimeoutMS},
		{"timeout negative", Env{DecisionTimeoutMS: "-5"}, CheckDecisionTimeout, EnvDecisionTimeoutMS},
		{"timeout fractional", Env{DecisionTimeoutMS: "1.5"}, CheckDecisionTimeout, EnvDecisionTimeoutMS},
		{"timeout with unit", Env{DecisionTimeoutMS: "30s"}, CheckDecisionTimeout, EnvDecisionTimeoutMS},
		{"simulation mode yes", Env{SimulationMode: "yes"}, CheckSimulationMode, EnvSimulationMode},
		{"simulation mode on", Env{SimulationMode: "on"}, CheckSimulationMode, EnvSimulationMode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Run(context.Background(), tc.env, Options{})
			require.Equal(t, Block, r.Decision)
			require.Equal(t, StatusInvalid, checkByName(t, r, tc.check).Status)
			require.Error(t, r.Err())
			require.Contains(t, r.Err().Error(), tc.wantInErr)
		})
	}
}

func TestRunDecisionTimeoutParsed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want int64
	}{
		{"", DefaultDecisionTimeoutMS},
		{"1500", 1500},
		{" 250 ", 250},
	}
	for _, tc := range tests {
		r := Run(context.Background(), Env{DecisionTimeoutMS: tc.raw}, Options{})
		require.Equal(t, tc.want, r.DecisionTimeoutMS, tc.raw)
		require.Equal(t, StatusOK, checkByName(t, r, CheckDecisionTimeout).Status)
	}
}

func TestRunHangingRegistryIsCutAtTimeout(t *testing.T) {
	t.Parallel()
	env := Env{GlobalRegistryURL: "http://" + silentServer(t) + "/"}

	r := Run(context.Background(), env, Options{Timeout: 200 * time.Millisecond})

	require.Equal(t, Block, r.Decision)
	c := checkByName(t, r, CheckGlobalRegistry)
	require.Equal(t, StatusUnreachable, c.Status)
	require.Contains(t, c.Detail, "timeout")
	require.Contains(t, r.Err().Error(), EnvGlobalRegistryURL)
}

func TestRunOptionalProviderDownSimulatesOnlyThatProvider(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	env := healthyEnv(t)
	env.RedisURL = "redis://" + closedAddr(t)
	env.QuantumProvider = "sim"

	r := Run(context.Background(), env, Options{Timeout: 5 * time.Second})

	require.Equal(t, ProceedSimulation, r.Decision)
	require.Equal(t, []string{CheckRedis, CheckQuantumProvider}, r.SimulatedProviders)
	require.Empty(t, r.Missing)
	require.Equal(t, StatusUnreachable, checkByName(t, r, CheckRedis).Status)
	require.Equal(t, StatusSimulated, checkByName(t, r, CheckQuantumProvider).Status)
}

func TestRunCustomHTTPClientIsUsed(t *testing.T) {
	t.Parallel()
	var calls int
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})}
	// The host is never resolved: the custom transport answers.
	r := Run(context.Background(), Env{GlobalRegistryURL: "https://registry.invalid/"}, Options{HTTPClient: client})
	require.Equal(t, StatusOK, checkByName(t, r, CheckGlobalRegistry).Status)
	require.Equal(t, 1, calls)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFromEnviron(t *testing.T) {
	t.Parallel()
	env := FromEnviron(mapLookup(map[string]string{
		EnvPostgresDSN:       " postgres://x ",
		EnvVaultAddr:         "http://vault:8200",
		EnvCosignKeyPath:     "/k",
		EnvGlobalRegistryURL: "https://reg",
		EnvFederationToken:   "t",
		EnvSimulationMode:    "true",
		EnvRedisURL:          "redis://r",
		EnvKafkaURL:          "k:9092",
		EnvPromURL:           "http://p",
		EnvNeuralFabricURL:   "http://n",
		EnvQuantumProvider:   "sim",
		EnvDecisionTimeoutMS: "10",
		"UNRELATED":          "x",
	}))
	require.Equal(t, Env{
		PostgresDSN: "postgres://x", VaultAddr: "http://vault:8200", CosignKeyPath: "/k",
		GlobalRegistryURL: "https://reg", FederationToken: "t", SimulationMode: "true",
		RedisURL: "redis://r", KafkaURL: "k:9092", PromURL: "http://p", NeuralFabricURL: "http://n",
		QuantumProvider: "sim", DecisionTimeoutMS: "10",
	}, env)
	require.Equal(t, Env{}, FromEnviron(nil))
	require.Equal(t, Env{}, FromEnviron(mapLookup(nil)))
}

func TestDecideTable(t *testing.T) {
	t.Parallel()
	ok := func(name, env string, critical bool) Check {
		return Check{Name: name, EnvVar: env, Critical: critical, Status: StatusOK}
	}
	with := func(c Check, s Status) Check { c.Status = s; return c }
	all := func() []Check {
		return []Check{
			ok(CheckPostgres, EnvPostgresDSN, true),
			ok(CheckVault, EnvVaultAddr, true),
			ok(CheckCosign, EnvCosignKeyPath, true),
			ok(CheckGlobalRegistry, EnvGlobalRegistryURL, true),
			ok(CheckFederationToken, EnvFederationToken, true),
			ok(CheckRedis, EnvRedisURL, false),
			ok(CheckKafka, EnvKafkaURL, false),
			ok(CheckPrometheus, EnvPromURL, false),
			ok(CheckNeuralFabric, EnvNeuralFabricURL, false),
			ok(CheckQuantumProvider, EnvQuantumProvider, false),
		}
	}
	set := func(i int, s Status) []Check {
		cs := all()
		cs[i] = with(cs[i], s)
		return cs
	}
	const (
		iPostgres = 0
		iCosign   = 2
		iRegistry = 3
		iRedis    = 5
		iQuantum  = 9
	)
	tests := []struct {
		name      string
		checks    []Check
		sim       triState
		timeoutOK bool
		want      Decision
	}{
		{"all ok", all(), triUnset, true, Proceed},
		{"all ok, sim false", all(), triFalse, true, Proceed},
		{"all ok, sim true", all(), triTrue, true, ProceedSimulation},
		{"critical missing", set(iPostgres, StatusMissing), triUnset, true, ProceedSimulation},
		{"critical unreachable", set(iPostgres, StatusUnreachable), triUnset, true, ProceedSimulation},
		{"critical invalid", set(iCosign, StatusInvalid), triUnset, true, ProceedSimulation},
		{"critical missing, sim false", set(iPostgres, StatusMissing), triFalse, true, Block},
		{"critical invalid, sim false", set(iCosign, StatusInvalid), triFalse, true, Block},
		{"critical missing, sim true", set(iPostgres, StatusMissing), triTrue, true, ProceedSimulation},
		{"registry missing", set(iRegistry, StatusMissing), triUnset, true, ProceedSimulation},
		{"registry unreachable", set(iRegistry, StatusUnreachable), triUnset, true, Block},
		{"registry invalid", set(iRegistry, StatusInvalid), triUnset, true, Block},
		{"registry unreachable, sim true", set(iRegistry, StatusUnreachable), triTrue, true, Block},
		{"optional unreachable", set(iRedis, StatusUnreachable), triUnset, true, ProceedSimulation},
		{"optional simulated", set(iQuantum, StatusSimulated), triUnset, true, ProceedSimulation},
		{"optional missing, sim false", set(iRedis, StatusMissing), triFalse, true, ProceedSimulation},
		{"bad timeout", all(), triUnset, false, Block},
		{"bad sim mode", all(), triInvalid, true, Block},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := decide(tc.checks, tc.sim, tc.timeoutOK)
			require.Equal(t, tc.want, r.Decision)
			require.Equal(t, tc.want == ProceedSimulation, r.SimulationMode)
			require.NotEmpty(t, r.Reasons)
			require.Equal(t, tc.want == Block, r.Err() != nil)
			if tc.sim == triFalse && tc.want == ProceedSimulation {
				require.Contains(t, r.Reasons[0], "SIMULATION_MODE=false")
			}
		})
	}
}
