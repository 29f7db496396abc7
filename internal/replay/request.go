package replay

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
)

// Bounds of a replay request: it is untrusted input.
const (
	// MaxProposals bounds the decisions one replay re-decides (ids, or a window's).
	MaxProposals = 100
	// MaxPolicyBytes bounds the candidate policy's YAML text.
	MaxPolicyBytes = 64 << 10
	// MaxRegions bounds the candidate region set.
	MaxRegions = 64
	// MaxWindow bounds a creation window.
	MaxWindow = 31 * 24 * time.Hour
	// MaxWeight bounds a candidate region's weight (the quorum certificate's bound).
	MaxWeight = 1 << 32
)

// PolicySource names the candidate policy in its compile errors.
const PolicySource = "candidate_policy"

// Selection names the decisions to replay: IDs, or the creation window [From, To).
type Selection struct {
	IDs      []string
	From, To time.Time
}

// Region is one region of a candidate region set; Weight 0 means the recorded weight.
type Region struct {
	Name   string
	Weight int64
}

// Candidate is what decisions are re-decided under.
type Candidate struct {
	// Policy is the candidate decision policy; nil: each decision's recorded
	// classification (impact, quorum, approvals) stands.
	Policy *policy.Engine
	// Regions is the candidate region set; nil: each decision's recorded regions.
	Regions []Region
}

// PolicyDigest is "sha256:<hex>" of the candidate policy, "" without one.
func (c Candidate) PolicyDigest() string {
	if c.Policy == nil {
		return ""
	}
	return c.Policy.Digest()
}

var reRegion = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// Parse checks a replay request and compiles its candidate. Every refusal is a status
// error: INVALID_ARGUMENT naming the field (a candidate policy that does not compile
// names its line), UNIMPLEMENTED for candidate_model. It reads nothing but req.
func Parse(req *canaryv1.ReplayRequest) (Selection, Candidate, error) {
	var sel Selection
	var cand Candidate
	window := req.GetFrom() != nil || req.GetTo() != nil
	switch n := len(req.GetProposalIds()); {
	case n == 0 && !window:
		return sel, cand, invalid("name the decisions to replay: proposal_ids, or from and to")
	case n > 0 && window:
		return sel, cand, invalid("proposal_ids and from/to: give one or the other")
	case n > MaxProposals:
		return sel, cand, invalid("proposal_ids: %d given, at most %d per replay", n, MaxProposals)
	}
	seen := make(map[string]bool, len(req.GetProposalIds()))
	for i, id := range req.GetProposalIds() {
		if !manifestpkg.ValidProposalID(id) {
			return sel, cand, invalid("proposal_ids[%d]: %q is not a proposal id (a ULID)", i, truncate(id, 40))
		}
		if seen[id] {
			return sel, cand, invalid("proposal_ids[%d]: %s is repeated", i, id)
		}
		seen[id] = true
		sel.IDs = append(sel.IDs, id)
	}
	if window {
		if req.GetFrom() == nil || req.GetTo() == nil {
			return sel, cand, invalid("from and to: both are required for a window (RFC 3339 times)")
		}
		if err := req.GetFrom().CheckValid(); err != nil {
			return sel, cand, invalid("from: %v", err)
		}
		if err := req.GetTo().CheckValid(); err != nil {
			return sel, cand, invalid("to: %v", err)
		}
		sel.From, sel.To = req.GetFrom().AsTime(), req.GetTo().AsTime()
		switch {
		case !sel.To.After(sel.From):
			return sel, cand, invalid("to (%s) must be after from (%s)", sel.To.Format(time.RFC3339), sel.From.Format(time.RFC3339))
		case sel.To.Sub(sel.From) > MaxWindow:
			return sel, cand, invalid("from/to: the window is %s, at most %s", sel.To.Sub(sel.From).Round(time.Second), MaxWindow)
		}
	}

	if req.GetCandidateModel() != "" {
		return sel, cand, status.Error(codes.Unimplemented,
			"candidate_model: not supported: the confidence score informs approvers but gates no outcome (no threshold), so a scoring model cannot change one")
	}
	if text := req.GetCandidatePolicy(); text != "" {
		if len(text) > MaxPolicyBytes {
			return sel, cand, invalid("candidate_policy: %d bytes, at most %d", len(text), MaxPolicyBytes)
		}
		e, err := policy.Parse([]byte(text), PolicySource)
		if err != nil {
			return sel, cand, invalid("%s", compileError(err))
		}
		cand.Policy = e
	}
	if n := len(req.GetCandidateRegions()); n > MaxRegions {
		return sel, cand, invalid("candidate_regions: %d given, at most %d", n, MaxRegions)
	}
	names := map[string]bool{}
	for i, r := range req.GetCandidateRegions() {
		switch {
		case !reRegion.MatchString(r.GetRegion()):
			return sel, cand, invalid("candidate_regions[%d].region: %q: want lower-case letters, digits and '-', at most 63", i, truncate(r.GetRegion(), 40))
		case names[r.GetRegion()]:
			return sel, cand, invalid("candidate_regions[%d].region: %s is listed twice", i, r.GetRegion())
		case r.GetWeight() < 0 || r.GetWeight() > MaxWeight:
			return sel, cand, invalid("candidate_regions[%d].weight: %d: want 1-%d (0: the recorded weight)", i, r.GetWeight(), int64(MaxWeight))
		}
		names[r.GetRegion()] = true
		cand.Regions = append(cand.Regions, Region{Name: r.GetRegion(), Weight: r.GetWeight()})
	}
	return sel, cand, nil
}

// compileError says where the candidate policy is wrong: "candidate_policy: line 5:
// defaults.impact_rules[0].when: ...".
func compileError(err error) string {
	var le *policy.LoadError
	if !errors.As(err, &le) {
		return PolicySource + ": " + err.Error()
	}
	var b strings.Builder
	b.WriteString(PolicySource)
	if le.Line > 0 {
		fmt.Fprintf(&b, ": line %d", le.Line)
	}
	if le.Path != "" {
		b.WriteString(": " + le.Path)
	}
	b.WriteString(": " + le.Msg)
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…", s[:n])
}
