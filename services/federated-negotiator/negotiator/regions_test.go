package negotiator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

func TestDefaultRegions(t *testing.T) {
	t.Parallel()
	c := negotiator.DefaultRegions()
	var names []string
	for _, r := range c.Regions {
		names = append(names, r.Name)
		require.GreaterOrEqual(t, r.Weight, int64(1))
		require.False(t, r.Silent, "no default region is silent")
		require.GreaterOrEqual(t, r.ErrorBudget, 0.1, "default regions accept medium-impact changes")
		require.Empty(t, r.Blackouts)
	}
	require.Equal(t, []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south"}, names)
	require.Equal(t, negotiatorv1.QuorumRule_QUORUM_RULE_MAJORITY, c.QuorumRule)
	require.Equal(t, int32(5), c.MaxRounds)
	require.Equal(t, names, c.TenantRegions("anyone"))
	require.Equal(t, 20*time.Millisecond, c.Regions[0].Latency)

	// The file shipped is the file embedded (LoadRegions reads the same thing).
	fromFile, err := negotiator.LoadRegions("regions.yaml")
	require.NoError(t, err)
	require.Equal(t, c, fromFile)
}

func TestParseRegionsPolicy(t *testing.T) {
	t.Parallel()
	c, err := negotiator.ParseRegions([]byte(`
quorum_rule: weighted
max_rounds: 3
regions:
  - {name: a, weight: 2, error_budget: 0}
  - {name: b}
  - {name: c, blackouts: [{start: "23:00", end: "01:00"}, {start: "2030-01-01T00:00:00+01:00", end: "2030-01-02T00:00:00Z"}]}
tenants:
  t2: {regions: [c, a], quorum_rule: unanimous}
  t3: {quorum_rule: two_thirds}
`))
	require.NoError(t, err)
	require.Equal(t, negotiatorv1.QuorumRule_QUORUM_RULE_WEIGHTED, c.QuorumRule)
	require.Equal(t, int32(3), c.MaxRounds)
	a, _ := c.Region("a")
	require.Equal(t, int64(2), a.Weight)
	require.Zero(t, a.ErrorBudget, "an explicit 0 is kept")
	b, ok := c.Region("b")
	require.True(t, ok)
	require.Equal(t, int64(1), b.Weight, "weight defaults to 1")
	require.Equal(t, 1.0, b.ErrorBudget, "error budget defaults to untouched")
	cr, _ := c.Region("c")
	require.Len(t, cr.Blackouts, 2)
	require.True(t, cr.Blackouts[0].Daily)
	require.Equal(t, time.Date(2029, 12, 31, 23, 0, 0, 0, time.UTC), cr.Blackouts[1].From, "instants are kept in UTC")
	_, ok = c.Region("zz")
	require.False(t, ok)

	require.Equal(t, []string{"c", "a"}, c.TenantRegions("t2"))
	require.Equal(t, []string{"a", "b", "c"}, c.TenantRegions("t3"))
	require.Equal(t, negotiatorv1.QuorumRule_QUORUM_RULE_UNANIMOUS, c.TenantRule("t2"))
	require.Equal(t, negotiatorv1.QuorumRule_QUORUM_RULE_TWO_THIRDS, c.TenantRule("t3"))
	require.Equal(t, negotiatorv1.QuorumRule_QUORUM_RULE_WEIGHTED, c.TenantRule("t9"))
}

func TestParseRegionsRejects(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ yaml, err string }{
		"empty":              {``, "empty file"},
		"no regions":         {`quorum_rule: majority`, "at least one region"},
		"unknown key":        {"regions: [{name: a, capacityy: 3}]", "capacityy"},
		"unknown top key":    {"regions: [{name: a}]\nregion: x", "region"},
		"two documents":      {"regions: [{name: a}]\n---\nregions: [{name: b}]", "exactly one YAML document"},
		"bad rule":           {"quorum_rule: most\nregions: [{name: a}]", "quorum rule"},
		"max rounds 0":       {"max_rounds: 0\nregions: [{name: a}]", "max_rounds 0"},
		"max rounds 21":      {"max_rounds: 21\nregions: [{name: a}]", "max_rounds 21"},
		"bad name":           {"regions: [{name: EU}]", `name "EU"`},
		"no name":            {"regions: [{weight: 2}]", `name ""`},
		"duplicate":          {"regions: [{name: a}, {name: a}]", "duplicate"},
		"weight 0":           {"regions: [{name: a, weight: 0}]", "weight 0"},
		"weight too big":     {"regions: [{name: a, weight: 1001}]", "weight 1001"},
		"negative capacity":  {"regions: [{name: a, capacity: -1}]", "capacity -1"},
		"error budget > 1":   {"regions: [{name: a, error_budget: 1.5}]", "error_budget 1.5"},
		"error budget NaN":   {"regions: [{name: a, error_budget: .nan}]", "error_budget NaN"},
		"negative ceiling":   {"regions: [{name: a, cost_ceiling: -5}]", "cost_ceiling -5"},
		"infinite cost":      {"regions: [{name: a, replica_cost: .inf}]", "replica_cost +Inf"},
		"bad currency":       {"regions: [{name: a, currency: euro}]", `currency "euro"`},
		"bad latency":        {"regions: [{name: a, latency: soon}]", `latency "soon"`},
		"latency too long":   {"regions: [{name: a, latency: 2h}]", `latency "2h"`},
		"bad blackout":       {`regions: [{name: a, blackouts: [{start: "25:00", end: "01:00"}]}]`, "blackouts[0]"},
		"mixed blackout":     {`regions: [{name: a, blackouts: [{start: "22:00", end: "2030-01-01T00:00:00Z"}]}]`, "blackouts[0]"},
		"empty blackout":     {`regions: [{name: a, blackouts: [{start: "22:00", end: "22:00"}]}]`, "empty daily window"},
		"backwards blackout": {`regions: [{name: a, blackouts: [{start: "2030-01-02T00:00:00Z", end: "2030-01-01T00:00:00Z"}]}]`, "not after"},
		"unknown tenant rgn": {"regions: [{name: a}]\ntenants: {t1: {regions: [b]}}", `"b" is not a configured region`},
		"dup tenant region":  {"regions: [{name: a}]\ntenants: {t1: {regions: [a, a]}}", "duplicate"},
		"bad tenant name":    {"regions: [{name: a}]\ntenants: {'t 1': {}}", `"t 1"`},
		"bad tenant rule":    {"regions: [{name: a}]\ntenants: {t1: {quorum_rule: all}}", "tenants.t1.quorum_rule"},
		"not YAML":           {"regions: [", "regions:"},
		"too large":          {"regions: [{name: a}]\n#" + strings.Repeat("x", 1<<20), "larger than"},
	} {
		_, err := negotiator.ParseRegions([]byte(tc.yaml))
		require.Error(t, err, name)
		require.Contains(t, err.Error(), tc.err, name)
	}
}

func TestLoadRegionsErrors(t *testing.T) {
	t.Parallel()
	_, err := negotiator.LoadRegions(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
	path := filepath.Join(t.TempDir(), "r.yaml")
	require.NoError(t, os.WriteFile(path, []byte("regions: [{name: A}]"), 0o600))
	_, err = negotiator.LoadRegions(path)
	require.ErrorContains(t, err, path, "the error names the file")
}

// FuzzParseRegions: any input either parses to a valid configuration or fails
// with an error; it never panics, and a parsed configuration is usable.
func FuzzParseRegions(f *testing.F) {
	seed, err := os.ReadFile("regions.yaml")
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte(`regions: [{name: a, blackouts: [{start: "22:00", end: "06:00"}]}]`))
	f.Add([]byte("quorum_rule: weighted\nregions: [{name: a, weight: 3}]\ntenants: {t: {regions: [a]}}"))
	f.Add([]byte("regions: [{name: a, latency: 1ms, error_budget: 0.05, cost_ceiling: 1e308}]"))
	f.Add([]byte("regions: &a [*a]"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := negotiator.ParseRegions(raw)
		if err != nil {
			require.Nil(t, c)
			return
		}
		require.NotEmpty(t, c.Regions)
		require.GreaterOrEqual(t, c.MaxRounds, int32(1))
		for _, r := range c.Regions {
			require.GreaterOrEqual(t, r.Weight, int64(1))
			require.True(t, r.ErrorBudget >= 0 && r.ErrorBudget <= 1)
			for _, b := range r.Blackouts {
				_ = b.Contains(time.Now())
				_ = b.String()
			}
			_, ok := c.Region(r.Name)
			require.True(t, ok)
		}
		for name := range c.Tenants {
			for _, rn := range c.TenantRegions(name) {
				_, ok := c.Region(rn)
				require.True(t, ok)
			}
		}
	})
}
