package policy

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/quorum"
)

// Impact levels, lowest first.
const (
	ImpactLow    = "low"
	ImpactMedium = "medium"
	ImpactHigh   = "high"
)

// Quorum rules understood by the federated negotiator: the names of internal/quorum,
// the one owner of the quorum vocabulary.
const (
	QuorumMajority  = quorum.RuleMajority
	QuorumTwoThirds = quorum.RuleTwoThirds
	QuorumUnanimous = quorum.RuleUnanimous
	QuorumWeighted  = quorum.RuleWeighted
)

// DecisionTimeoutEnv names the environment variable holding the default
// negotiation deadline in milliseconds (P6).
const DecisionTimeoutEnv = "PHASE_I4_DECISION_TIMEOUT_MS"

// DefaultDecisionTimeout is the negotiation deadline when neither the policy
// nor PHASE_I4_DECISION_TIMEOUT_MS sets one.
const DefaultDecisionTimeout = 30 * time.Second

// MaxDecisionTimeout bounds decision_timeout_ms, in line with the negotiator
// API (1–600000 ms).
const MaxDecisionTimeout = 10 * time.Minute

// Sentinel errors. [Engine.Evaluate] wraps ErrCrossTenantDenied and
// ErrCostCapExceeded and still returns the full Decision; callers map them to
// PermissionDenied (HTTP 403) and FailedPrecondition (HTTP 409/412). Both may
// be present at once (errors.Join), so test with errors.Is.
var (
	ErrCrossTenantDenied = errors.New("policy: cross-tenant proposal denied")
	ErrCostCapExceeded   = errors.New("policy: monthly cost delta exceeds the cap")
	// ErrInvalidInput: the Input itself is malformed (no tenant, unknown
	// declared impact, NaN cost...). No Decision is returned.
	ErrInvalidInput = errors.New("policy: invalid input")
	// ErrEvaluation: a rule failed at run time (missing parameter key, cost
	// limit exceeded...). The engine fails closed: no Decision is returned.
	ErrEvaluation = errors.New("policy: rule evaluation failed")
	// ErrUnknownActionRefused: Input.UnknownAction is set and the tenant's
	// policy says `unknown_actions: refuse` (the default). No Decision is
	// returned; callers map it to InvalidArgument (HTTP 400).
	ErrUnknownActionRefused = errors.New("policy: unknown action refused")
)

// Values of the `unknown_actions` policy key: what happens to a proposal whose
// action is not in the fabric's action catalogue (internal/actions).
const (
	// UnknownActionsRefuse refuses it (ErrUnknownActionRefused). The default.
	UnknownActionsRefuse = "refuse"
	// UnknownActionsHigh classifies it as high impact, whatever the rules say:
	// an approver and a passed dry run are required (P3).
	UnknownActionsHigh = "high"
)

// Input is what the engine knows about one proposal.
type Input struct {
	TenantID       string
	Action         string // e.g. "scale", "migrate"
	Target         string // e.g. "serviceX"
	DeclaredImpact string // "", "low", "medium" or "high" ("" = low)
	// Regions touched. The engine sorts and de-duplicates them, so order and
	// repetition never change a decision.
	Regions []string
	// Parameters of the manifest (JSON-like values: maps with string keys,
	// slices, strings, numbers, bools, nil). Visible to rules as `parameters`;
	// converted (and rejected with ErrInvalidInput if malformed) only when a
	// rule of the tenant's policy reads them.
	Parameters       map[string]any
	ReplicaDelta     int64
	CostDeltaMonthly float64 // currency units per month; negative = saving
	BlastRadius      float64 // 0..1, fraction of the tenant's regions touched
	TargetTenant     string  // "" or == TenantID unless cross-tenant
	// UnknownAction says Action is not in the fabric's action catalogue
	// (internal/actions): the policy's unknown_actions refuses it
	// (ErrUnknownActionRefused) or makes it high impact.
	UnknownAction bool
	// ImpactUnknown, when not "", says why the size of the change could not be
	// computed (its dry-run plan failed, the plan could not be compared with
	// the pre-state...). The engine fails closed: the computed impact is high,
	// with this as the reason, whatever ReplicaDelta and CostDeltaMonthly say.
	ImpactUnknown string
}

// Decision is the policy's answer for one proposal.
type Decision struct {
	Impact              string // "low" | "medium" | "high" (effective)
	ComputedImpact      string
	Quorum              string // "majority" | "two_thirds" | "unanimous" | "weighted"
	ApprovalRequired    bool
	ApprovalsRequired   int  // M of M-of-N; 0 when no approval is required
	DryRunDefault       bool // P3: true for high impact until an approver is recorded
	MaxMonthlyCostDelta float64
	Currency            string
	Reasons             []string // human-readable, e.g. `rule "wide-blast-radius": touches 3 regions → high`

	// RegionWeights are the vote weights for the weighted quorum (nil unless
	// the policy sets them; a region not listed weighs 1).
	RegionWeights map[string]float64
	// DecisionTimeout is the negotiation deadline (P6).
	DecisionTimeout time.Duration
	// CrossTenant reports whether the proposal targets another tenant (P5).
	CrossTenant bool
	// Policy names the section that applied: "defaults" or "tenant:<id>".
	Policy string
	// PolicyDigest is "sha256:<hex>" of the policy file, for the audit trail.
	PolicyDigest string
}

// Engine evaluates proposals against one loaded policy file. It is
// immutable and safe for concurrent use.
type Engine struct {
	source         string
	digest         string
	defaults       *compiledPolicy
	tenants        map[string]*compiledPolicy
	tenantIDs      []string
	defaultTimeout time.Duration
	costBudget     uint64 // EvaluateCostLimit; lowered by tests
}

// Source is the name the policy was loaded from (a path, or "embedded:default.yaml").
func (e *Engine) Source() string { return e.source }

// Digest is "sha256:<hex>" of the raw policy file.
func (e *Engine) Digest() string { return e.digest }

// Tenants lists the tenants with an override section, sorted.
func (e *Engine) Tenants() []string { return slices.Clone(e.tenantIDs) }

// DefaultDecisionTimeout is the deadline used when the policy sets none.
func (e *Engine) DefaultDecisionTimeout() time.Duration { return e.defaultTimeout }

// WithDefaultDecisionTimeout returns a copy of e whose fallback negotiation
// deadline is d (e.g. config.DecisionTimeoutMS), for policies that do not set
// decision_timeout_ms. d outside (0, MaxDecisionTimeout] is ignored.
func (e *Engine) WithDefaultDecisionTimeout(d time.Duration) *Engine {
	c := *e
	if d > 0 && d <= MaxDecisionTimeout {
		c.defaultTimeout = d
	}
	return &c
}

// ImpactRank orders impacts: low 1, medium 2, high 3. Anything else (the empty
// impact of a proposal not yet classified, an unknown word, another case) is 0, below
// low: the ranking itself does not fail closed, its callers do (the policy refuses a
// declared impact ranked 0; a classification that fails is made high by the caller).
// The one ordering the policy, the coordinator and the replay share.
func ImpactRank(s string) int {
	switch s {
	case ImpactLow:
		return 1
	case ImpactMedium:
		return 2
	case ImpactHigh:
		return 3
	}
	return 0
}

// MaxImpact is the higher of a and b by ImpactRank; a on a tie (so an impact ranked 0
// never replaces a).
func MaxImpact(a, b string) string {
	if ImpactRank(b) > ImpactRank(a) {
		return b
	}
	return a
}

// facts is the normalised Input, shared by every expression of one evaluation.
type facts struct {
	in             Input
	declared       string
	regions        []string
	absDelta       int64
	crossTenant    bool
	targetTenant   string
	impact         string
	computedImpact string
}

func normalize(in Input) (*facts, error) {
	f := &facts{in: in}
	if strings.TrimSpace(in.TenantID) == "" {
		return nil, fmt.Errorf("%w: tenant_id is required (P5)", ErrInvalidInput)
	}
	f.declared = strings.ToLower(strings.TrimSpace(in.DeclaredImpact))
	if f.declared == "" {
		f.declared = ImpactLow
	}
	if ImpactRank(f.declared) == 0 {
		return nil, fmt.Errorf("%w: declared impact %q is not low, medium or high", ErrInvalidInput, in.DeclaredImpact)
	}
	if math.IsNaN(in.CostDeltaMonthly) || math.IsInf(in.CostDeltaMonthly, 0) {
		return nil, fmt.Errorf("%w: cost delta %v is not a finite number", ErrInvalidInput, in.CostDeltaMonthly)
	}
	if math.IsNaN(in.BlastRadius) || in.BlastRadius < 0 || in.BlastRadius > 1 {
		return nil, fmt.Errorf("%w: blast radius %v is outside 0..1", ErrInvalidInput, in.BlastRadius)
	}
	regions := make([]string, 0, len(in.Regions))
	for _, r := range in.Regions {
		if r = strings.TrimSpace(r); r != "" {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)
	f.regions = slices.Compact(regions)
	switch {
	case in.ReplicaDelta == math.MinInt64:
		f.absDelta = math.MaxInt64
	case in.ReplicaDelta < 0:
		f.absDelta = -in.ReplicaDelta
	default:
		f.absDelta = in.ReplicaDelta
	}
	f.targetTenant = in.TargetTenant
	if f.targetTenant == "" {
		f.targetTenant = in.TenantID
	}
	f.crossTenant = f.targetTenant != in.TenantID
	return f, nil
}

// policyFor returns the compiled policy that governs tenant.
func (e *Engine) policyFor(tenant string) *compiledPolicy {
	if p, ok := e.tenants[tenant]; ok {
		return p
	}
	return e.defaults
}

// Evaluate applies the policy of in.TenantID (or the defaults) to one
// proposal. It never reads the clock or the environment, so the same Input
// always yields the same Decision.
//
// When the proposal is cross-tenant and not allowed, or over the cost cap,
// Evaluate returns the complete Decision together with an error wrapping
// ErrCrossTenantDenied and/or ErrCostCapExceeded. A malformed Input
// (ErrInvalidInput) or a rule failing at run time (ErrEvaluation) returns a
// zero Decision: the engine fails closed.
func (e *Engine) Evaluate(in Input) (Decision, error) {
	f, err := normalize(in)
	if err != nil {
		return Decision{}, err
	}
	p := e.policyFor(in.TenantID)
	act := &activation{f: f, budget: e.costBudget}

	d := Decision{
		Quorum:              p.quorum,
		MaxMonthlyCostDelta: p.maxCost,
		Currency:            p.currency,
		Policy:              p.name,
		PolicyDigest:        e.digest,
		CrossTenant:         f.crossTenant,
		DecisionTimeout:     cmp.Or(p.timeout, e.defaultTimeout),
	}
	if len(p.regionWeights) > 0 {
		d.RegionWeights = maps.Clone(p.regionWeights)
	}

	// 0. An action the fabric does not know: refused, or high whatever the rules say.
	computed := ImpactLow
	if in.UnknownAction {
		if p.unknownActions != UnknownActionsHigh {
			return Decision{}, fmt.Errorf("%w: action %q is not one the fabric knows, and %s refuses unknown actions (unknown_actions: %s)",
				ErrUnknownActionRefused, truncate(in.Action, 64), p.name, p.unknownActions)
		}
		computed = ImpactHigh
		d.Reasons = append(d.Reasons, fmt.Sprintf("action %q is not one the fabric knows (unknown_actions: high) → high", truncate(in.Action, 64)))
	}
	if in.ImpactUnknown != "" {
		computed = ImpactHigh
		d.Reasons = append(d.Reasons, fmt.Sprintf("impact unknown: %s → high", truncate(in.ImpactUnknown, 300)))
	}

	// 1. Impact: every matching rule counts; the highest wins.
	for i := range p.impactRules {
		r := &p.impactRules[i]
		ok, err := r.when.eval(act)
		if err != nil {
			return Decision{}, ruleErr(fmt.Sprintf("%s impact rule %q", p.name, r.name), err)
		}
		if ok {
			computed = MaxImpact(computed, r.impact)
			d.Reasons = append(d.Reasons, fmt.Sprintf("rule %q: %s → %s", r.name, r.reason.render(act), r.impact))
		}
	}
	f.computedImpact = computed
	f.impact = MaxImpact(f.declared, computed)
	d.ComputedImpact = computed
	d.Impact = f.impact
	switch {
	case f.declared == computed:
		d.Reasons = append(d.Reasons, fmt.Sprintf("impact %s (declared and computed)", f.impact))
	case f.impact == f.declared:
		d.Reasons = append(d.Reasons, fmt.Sprintf("impact %s: declared %s is higher than computed %s", f.impact, f.declared, computed))
	default:
		d.Reasons = append(d.Reasons, fmt.Sprintf("impact %s: computed %s is higher than declared %s", f.impact, computed, f.declared))
	}

	// 2. Quorum: first matching quorum rule, else the policy's quorum.
	quorumReason := fmt.Sprintf("quorum %s (%s)", p.quorum, p.name)
	for i := range p.quorumRules {
		r := &p.quorumRules[i]
		ok, err := r.when.eval(act)
		if err != nil {
			return Decision{}, ruleErr(fmt.Sprintf("%s quorum rule %q", p.name, r.name), err)
		}
		if ok {
			d.Quorum = r.quorum
			quorumReason = fmt.Sprintf("quorum rule %q: %s → %s", r.name, r.reason.render(act), r.quorum)
			break
		}
	}
	d.Reasons = append(d.Reasons, quorumReason)

	// 3. Human approval (P3: always for high impact).
	approve, err := p.approvalWhen.eval(act)
	if err != nil {
		return Decision{}, ruleErr(p.name+" approval_when", err)
	}
	switch {
	case f.impact == ImpactHigh:
		d.ApprovalRequired = true
		d.Reasons = append(d.Reasons, fmt.Sprintf("approval required: high impact (P3), %d approval(s)", p.approvals))
	case approve:
		d.ApprovalRequired = true
		d.Reasons = append(d.Reasons, fmt.Sprintf("approval required: approval_when %q, %d approval(s)", truncate(p.approvalWhen.src, 120), p.approvals))
	}
	if d.ApprovalRequired {
		d.ApprovalsRequired = p.approvals
	}

	// 4. Dry-run default (P3: always for high impact).
	dry, err := p.dryRunWhen.eval(act)
	if err != nil {
		return Decision{}, ruleErr(p.name+" dry_run_when", err)
	}
	switch {
	case f.impact == ImpactHigh:
		d.DryRunDefault = true
		d.Reasons = append(d.Reasons, "dry run by default until an approver is recorded: high impact (P3)")
	case dry:
		d.DryRunDefault = true
		d.Reasons = append(d.Reasons, fmt.Sprintf("dry run by default: dry_run_when %q", truncate(p.dryRunWhen.src, 120)))
	}

	// 5. Gates. The Decision is complete; errors only say it is refused.
	var errs []error
	if p.maxCost > 0 && in.CostDeltaMonthly > p.maxCost {
		d.Reasons = append(d.Reasons, fmt.Sprintf("refused: cost delta %s %s/month exceeds the cap %s %s",
			money(in.CostDeltaMonthly), p.currency, money(p.maxCost), p.currency))
		errs = append(errs, fmt.Errorf("%w: %s %s/month is over the %s %s cap of %s",
			ErrCostCapExceeded, money(in.CostDeltaMonthly), p.currency, money(p.maxCost), p.currency, p.name))
	}
	if f.crossTenant {
		if p.crossTenantAllows(f.targetTenant) {
			d.Reasons = append(d.Reasons, fmt.Sprintf("cross-tenant proposal %s → %s allowed by %s (P5)", in.TenantID, f.targetTenant, p.name))
		} else {
			d.Reasons = append(d.Reasons, fmt.Sprintf("refused: cross-tenant proposal %s → %s not allowed by %s (P5)", in.TenantID, f.targetTenant, p.name))
			errs = append(errs, fmt.Errorf("%w: tenant %q may not propose changes to tenant %q (%s)",
				ErrCrossTenantDenied, in.TenantID, f.targetTenant, p.name))
		}
	}
	return d, errors.Join(errs...)
}

// ruleErr reports an expression that failed at run time. Malformed
// parameters stay ErrInvalidInput; anything else is ErrEvaluation.
func ruleErr(where string, err error) error {
	if errors.Is(err, ErrInvalidInput) {
		return fmt.Errorf("%w (read by %s)", err, where)
	}
	return fmt.Errorf("%w: %s: %w", ErrEvaluation, where, err)
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
