package negotiator

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"github.com/decision-fabric/fabric/internal/regionkeys"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/config"
	qc "github.com/decision-fabric/fabric/internal/quorum"
)

// defaultRegionsYAML is regions.yaml, the default region set.
//
//go:embed regions.yaml
var defaultRegionsYAML []byte

// Limits of the regions file; each violation is an error naming the field.
const (
	maxRegionsFileBytes = 1 << 20
	maxRegionCount      = 64
	maxWeight           = 1000
	maxLatency          = time.Minute
	defaultMaxRounds    = 5
	maxMaxRounds        = 20
)

var (
	reTenantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	reCurrency   = regexp.MustCompile(`^[A-Z]{3}$`)
	reClock      = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// RegionsConfig is the negotiator's region set and policy (regions.yaml).
type RegionsConfig struct {
	// QuorumRule applies when a request and the tenant name none.
	QuorumRule negotiatorv1.QuorumRule
	// MaxRounds bounds the rounds of counter-offers.
	MaxRounds int32
	// Regions are the simulated regional agents, in file order.
	Regions []RegionConfig
	// Tenants holds per-tenant policy; tenants not listed use every region.
	Tenants map[string]TenantPolicy
}

// TenantPolicy restricts one tenant's negotiations.
type TenantPolicy struct {
	// Regions the tenant negotiates with (all configured regions when empty).
	Regions []string
	// QuorumRule overrides RegionsConfig.QuorumRule when set.
	QuorumRule negotiatorv1.QuorumRule
}

// RegionConfig is one simulated region's state.
type RegionConfig struct {
	Name string
	// Weight counts under QUORUM_RULE_WEIGHTED (1..1000).
	Weight int64
	// Capacity is the most replicas the region runs; 0 means no limit.
	Capacity int64
	// ErrorBudget is the fraction of the SLO error budget left (0..1). Below
	// 0.1 the region refuses every change whose impact is not "low".
	ErrorBudget float64
	// CostCeiling is the most the region spends per month; 0 means none.
	CostCeiling float64
	// ReplicaCost is the monthly cost of one replica; 0 means unknown (cost
	// is then only checked against parameters.monthly_cost).
	ReplicaCost float64
	// Currency is the ISO 4217 code of CostCeiling and ReplicaCost.
	Currency string
	// Blackouts are windows in which the region refuses every change.
	Blackouts []Blackout
	// Latency is how long the agent takes to answer.
	Latency time.Duration
	// Silent regions never answer (a partitioned region): their Vote blocks
	// until its context ends.
	Silent bool
	// Abstain regions always ABSTAIN.
	Abstain bool
}

// Blackout is a window in which a region refuses changes: daily between two
// UTC times of day (wrapping midnight when End is before Start), or between
// two absolute instants.
type Blackout struct {
	// Daily is true for a time-of-day window; StartMin and EndMin are then
	// minutes after 00:00 UTC.
	Daily            bool
	StartMin, EndMin int
	// From and To bound an absolute window [From, To) when Daily is false.
	From, To time.Time
}

// Contains reports whether t falls in the window (start inclusive, end exclusive).
func (b Blackout) Contains(t time.Time) bool {
	if !b.Daily {
		return !t.Before(b.From) && t.Before(b.To)
	}
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	if b.StartMin < b.EndMin {
		return m >= b.StartMin && m < b.EndMin
	}
	return m >= b.StartMin || m < b.EndMin // wraps midnight
}

// String renders the window as configured, e.g. "22:00-06:00 UTC".
func (b Blackout) String() string {
	if b.Daily {
		return fmt.Sprintf("%02d:%02d-%02d:%02d UTC", b.StartMin/60, b.StartMin%60, b.EndMin/60, b.EndMin%60)
	}
	return b.From.UTC().Format(time.RFC3339) + " to " + b.To.UTC().Format(time.RFC3339)
}

// The file format. Pointers tell "absent" (take the default) from zero.
type regionsFile struct {
	QuorumRule string                `yaml:"quorum_rule"`
	MaxRounds  *int32                `yaml:"max_rounds"`
	Regions    []regionFile          `yaml:"regions"`
	Tenants    map[string]tenantFile `yaml:"tenants"`
}

type regionFile struct {
	Name        string         `yaml:"name"`
	Weight      *int64         `yaml:"weight"`
	Capacity    int64          `yaml:"capacity"`
	ErrorBudget *float64       `yaml:"error_budget"`
	CostCeiling float64        `yaml:"cost_ceiling"`
	ReplicaCost float64        `yaml:"replica_cost"`
	Currency    string         `yaml:"currency"`
	Latency     string         `yaml:"latency"`
	Blackouts   []blackoutFile `yaml:"blackouts"`
	Silent      bool           `yaml:"silent"`
	Abstain     bool           `yaml:"abstain"`
}

type blackoutFile struct {
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

type tenantFile struct {
	Regions    []string `yaml:"regions"`
	QuorumRule string   `yaml:"quorum_rule"`
}

// DefaultRegions returns the embedded regions.yaml, parsed. It panics only if
// the embedded file is invalid, which a test rules out.
func DefaultRegions() *RegionsConfig {
	c, err := ParseRegions(defaultRegionsYAML)
	if err != nil {
		panic(fmt.Sprintf("negotiator: embedded regions.yaml: %v", err))
	}
	return c
}

// LoadRegions reads and parses a regions file.
func LoadRegions(path string) (*RegionsConfig, error) {
	raw, err := config.ReadBounded(path, maxRegionsFileBytes, "negotiator: regions")
	if err != nil {
		return nil, err
	}
	c, err := ParseRegions(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseRegions decodes and validates a regions file strictly: unknown keys,
// a second YAML document and out-of-range values are errors.
func ParseRegions(raw []byte) (*RegionsConfig, error) {
	var f regionsFile
	if err := config.DecodeStrict(raw, maxRegionsFileBytes, "regions", &f); err != nil {
		return nil, err
	}
	return f.validate()
}

func (f *regionsFile) validate() (*RegionsConfig, error) {
	c := &RegionsConfig{QuorumRule: negotiatorv1.QuorumRule_QUORUM_RULE_MAJORITY, MaxRounds: defaultMaxRounds}
	if f.QuorumRule != "" {
		r, err := qc.ParseRule(f.QuorumRule)
		if err != nil {
			return nil, fmt.Errorf("quorum_rule: %w", err)
		}
		c.QuorumRule = r
	}
	if f.MaxRounds != nil {
		if *f.MaxRounds < 1 || *f.MaxRounds > maxMaxRounds {
			return nil, fmt.Errorf("max_rounds %d: want 1..%d", *f.MaxRounds, maxMaxRounds)
		}
		c.MaxRounds = *f.MaxRounds
	}
	if len(f.Regions) == 0 {
		return nil, errors.New("regions: at least one region is required")
	}
	if len(f.Regions) > maxRegionCount {
		return nil, fmt.Errorf("regions: at most %d", maxRegionCount)
	}
	seen := map[string]bool{}
	for i, rf := range f.Regions {
		r, err := rf.validate()
		if err != nil {
			return nil, fmt.Errorf("regions[%d]: %w", i, err)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("regions[%d]: name %q: duplicate", i, r.Name)
		}
		seen[r.Name] = true
		c.Regions = append(c.Regions, r)
	}
	c.Tenants = map[string]TenantPolicy{}
	for name, tf := range f.Tenants {
		if !reTenantName.MatchString(name) {
			return nil, fmt.Errorf("tenants: %q: want 1-128 letters, digits, '.', '_' or '-'", name)
		}
		p := TenantPolicy{}
		if tf.QuorumRule != "" {
			r, err := qc.ParseRule(tf.QuorumRule)
			if err != nil {
				return nil, fmt.Errorf("tenants.%s.quorum_rule: %w", name, err)
			}
			p.QuorumRule = r
		}
		for _, rn := range tf.Regions {
			if !seen[rn] {
				return nil, fmt.Errorf("tenants.%s.regions: %q is not a configured region", name, rn)
			}
			if slices.Contains(p.Regions, rn) {
				return nil, fmt.Errorf("tenants.%s.regions: %q: duplicate", name, rn)
			}
			p.Regions = append(p.Regions, rn)
		}
		c.Tenants[name] = p
	}
	return c, nil
}

func (rf regionFile) validate() (RegionConfig, error) {
	r := RegionConfig{
		Name: rf.Name, Weight: 1, Capacity: rf.Capacity, ErrorBudget: 1,
		CostCeiling: rf.CostCeiling, ReplicaCost: rf.ReplicaCost, Currency: rf.Currency,
		Silent: rf.Silent, Abstain: rf.Abstain,
	}
	if !regionkeys.ValidRegion(r.Name) {
		return r, fmt.Errorf("name %q: want 1-64 of [a-z0-9-], starting with a letter or digit", r.Name)
	}
	if rf.Weight != nil {
		if *rf.Weight < 1 || *rf.Weight > maxWeight {
			return r, fmt.Errorf("weight %d: want 1..%d", *rf.Weight, maxWeight)
		}
		r.Weight = *rf.Weight
	}
	if r.Capacity < 0 {
		return r, fmt.Errorf("capacity %d: want >= 0 (0: no limit)", r.Capacity)
	}
	if rf.ErrorBudget != nil {
		if b := *rf.ErrorBudget; !(b >= 0 && b <= 1) { // also refuses NaN
			return r, fmt.Errorf("error_budget %v: want 0..1", b)
		}
		r.ErrorBudget = *rf.ErrorBudget
	}
	for name, v := range map[string]float64{"cost_ceiling": r.CostCeiling, "replica_cost": r.ReplicaCost} {
		if !(v >= 0) || math.IsInf(v, 0) {
			return r, fmt.Errorf("%s %v: want a finite number >= 0", name, v)
		}
	}
	if r.Currency != "" && !reCurrency.MatchString(r.Currency) {
		return r, fmt.Errorf("currency %q: want an ISO 4217 code such as EUR", r.Currency)
	}
	if rf.Latency != "" {
		d, err := time.ParseDuration(rf.Latency)
		if err != nil || d < 0 || d > maxLatency {
			return r, fmt.Errorf("latency %q: want a duration between 0 and %s, e.g. 50ms", rf.Latency, maxLatency)
		}
		r.Latency = d
	}
	for i, bf := range rf.Blackouts {
		b, err := parseBlackout(bf)
		if err != nil {
			return r, fmt.Errorf("blackouts[%d]: %w", i, err)
		}
		r.Blackouts = append(r.Blackouts, b)
	}
	return r, nil
}

func parseBlackout(bf blackoutFile) (Blackout, error) {
	var b Blackout
	if reClock.MatchString(bf.Start) && reClock.MatchString(bf.End) {
		b.Daily = true
		b.StartMin = clockMinutes(bf.Start)
		b.EndMin = clockMinutes(bf.End)
		if b.StartMin == b.EndMin {
			return b, fmt.Errorf("start %q equals end: an empty daily window", bf.Start)
		}
		return b, nil
	}
	from, err1 := time.Parse(time.RFC3339, bf.Start)
	to, err2 := time.Parse(time.RFC3339, bf.End)
	if err1 != nil || err2 != nil {
		return b, fmt.Errorf("start %q, end %q: want two UTC times of day (\"22:00\") or two RFC 3339 instants", bf.Start, bf.End)
	}
	if !to.After(from) {
		return b, fmt.Errorf("end %q is not after start %q", bf.End, bf.Start)
	}
	b.From, b.To = from.UTC(), to.UTC()
	return b, nil
}

func clockMinutes(s string) int {
	return int(s[0]-'0')*600 + int(s[1]-'0')*60 + int(s[3]-'0')*10 + int(s[4]-'0')
}

// Region returns the named region's configuration.
func (c *RegionsConfig) Region(name string) (RegionConfig, bool) {
	for _, r := range c.Regions {
		if r.Name == name {
			return r, true
		}
	}
	return RegionConfig{}, false
}

// TenantRegions are the regions a tenant negotiates with, in file order.
func (c *RegionsConfig) TenantRegions(tenant string) []string {
	if p, ok := c.Tenants[tenant]; ok && len(p.Regions) > 0 {
		return slices.Clone(p.Regions)
	}
	out := make([]string, len(c.Regions))
	for i, r := range c.Regions {
		out[i] = r.Name
	}
	return out
}

// TenantRule is the quorum rule a tenant uses when its request names none.
func (c *RegionsConfig) TenantRule(tenant string) negotiatorv1.QuorumRule {
	if p, ok := c.Tenants[tenant]; ok && p.QuorumRule != negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED {
		return p.QuorumRule
	}
	return c.QuorumRule
}
