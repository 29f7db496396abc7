package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/cel-go/cel"
	"gopkg.in/yaml.v3"

	"github.com/decision-fabric/fabric/internal/approval"
	"github.com/decision-fabric/fabric/internal/quorum"
)

// MaxFileSize bounds a policy file.
const MaxFileSize = 1 << 20

// Limits that keep a policy reviewable and its evaluation cheap.
const (
	maxRules     = 256
	maxTenants   = 10_000
	maxApprovals = 100
	maxNameLen   = 128
)

// FormatVersion is the only policy file version understood.
const FormatVersion = 1

// LoadError is a rejected policy file: where and why. Line is 1-based (0 when
// the problem has no single position).
type LoadError struct {
	Source string // file name as given to Load/Parse
	Line   int
	Path   string // e.g. "tenants.t1.impact_rules[2].when"
	Msg    string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and compiles the policy file at path.
func Load(path string) (*Engine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: %s: %w", path, err)
	}
	return Parse(raw, path)
}

// Check validates the policy file at path: strict YAML, every key known,
// every value in range, every CEL expression compiled and type-checked. It
// backs `fabric policy check FILE`.
func Check(path string) error {
	_, err := Load(path)
	return err
}

// Parse compiles a policy file. source names it in error messages
// ("source:line: path: message"). The fallback negotiation deadline is
// PHASE_I4_DECISION_TIMEOUT_MS as set when Parse runs (30 s when unset);
// see [Engine.WithDefaultDecisionTimeout].
func Parse(raw []byte, source string) (*Engine, error) {
	if source == "" {
		source = "<policy>"
	}
	p := &parser{source: source}
	if len(raw) > MaxFileSize {
		return nil, p.errf(nil, "", "file is larger than %d bytes", MaxFileSize)
	}
	ev, err := celEnvs()
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	p.env = ev

	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.errf(nil, "", "empty policy file")
		}
		return nil, p.yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.yamlErr(err)
		}
		return nil, p.errf(&extra, "", "a policy file holds one YAML document")
	}
	e, err := p.file(&doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	e.source = source
	e.digest = "sha256:" + hex.EncodeToString(sum[:])
	e.defaultTimeout = DefaultDecisionTimeout // the process's setting: WithDefaultDecisionTimeout
	e.costBudget = EvaluateCostLimit
	return e, nil
}

type parser struct {
	source string
	env    envs
}

func (p *parser) errf(n *yaml.Node, path, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &LoadError{Source: p.source, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func (p *parser) yamlErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	return &LoadError{Source: p.source, Line: line, Msg: "invalid YAML: " + msg}
}

// mapping iterates the pairs of a mapping node, rejecting aliases, non-string
// and duplicate keys. A null node is an empty mapping when allowNull is set.
func (p *parser) mapping(n *yaml.Node, path string, allowNull bool, fn func(key string, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return p.errf(n, path, "YAML anchors and aliases are not supported in policy files")
	}
	if allowNull && isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errf(n, path, "must be a mapping, not %s", kindName(n))
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" || k.Tag == "!!merge" {
			return p.errf(k, path, "keys must be plain strings")
		}
		if seen[k.Value] {
			return p.errf(k, join(path, k.Value), "duplicate key")
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			return p.errf(v, join(path, k.Value), "YAML anchors and aliases are not supported in policy files")
		}
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) sequence(n *yaml.Node, path string, fn func(i int, v *yaml.Node) error) error {
	if n.Kind != yaml.SequenceNode {
		return p.errf(n, path, "must be a list, not %s", kindName(n))
	}
	for i, v := range n.Content {
		if v.Kind == yaml.AliasNode || v.Anchor != "" {
			return p.errf(v, fmt.Sprintf("%s[%d]", path, i), "YAML anchors and aliases are not supported in policy files")
		}
		if err := fn(i, v); err != nil {
			return err
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return "a scalar (" + strings.TrimPrefix(n.Tag, "!!") + ")"
	}
	return "an empty value"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (p *parser) str(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", p.errf(n, path, "must be a string, not %s", kindName(n))
	}
	return n.Value, nil
}

func (p *parser) integer(n *yaml.Node, path string) (int64, error) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		return 0, p.errf(n, path, "must be an integer, not %s", kindName(n))
	}
	return v, nil
}

func (p *parser) number(n *yaml.Node, path string) (float64, error) {
	var v float64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" && n.Tag != "!!float" || n.Decode(&v) != nil {
		return 0, p.errf(n, path, "must be a number, not %s", kindName(n))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.errf(n, path, "must be a finite number")
	}
	return v, nil
}

func (p *parser) enum(n *yaml.Node, path string, allowed ...string) (string, error) {
	s, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	if !slices.Contains(allowed, s) {
		return "", p.errf(n, path, "unknown value %q (want one of: %s)", s, strings.Join(allowed, ", "))
	}
	return s, nil
}

// name validates an identifier-like name: a tenant id or a rule name.
func (p *parser) name(n *yaml.Node, path, what string) (string, error) {
	s, err := p.str(n, path)
	if err != nil {
		return "", err
	}
	if s == "" || len(s) > maxNameLen || strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' || r == unicode.ReplacementChar
	}) >= 0 {
		return "", p.errf(n, path, "%s %q must be 1-%d characters without spaces, quotes or control characters", what, s, maxNameLen)
	}
	return s, nil
}

// expression compiles a CEL bool expression, mapping CEL positions to file lines.
func (p *parser) expression(n *yaml.Node, path string, env *cel.Env) (*expr, error) {
	src, err := p.str(n, path)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(src) == "" {
		return nil, p.errf(n, path, "empty CEL expression")
	}
	x, issues := compileBool(env, src)
	if issues == nil {
		return x, nil
	}
	msgs := make([]string, 0, len(issues))
	for _, is := range issues {
		m := is.msg
		if is.col > 0 || is.line > 1 {
			m += fmt.Sprintf(" (expression line %d, column %d)", max(is.line, 1), is.col+1)
		}
		msgs = append(msgs, m)
	}
	// A block scalar (| or >) starts on the line after its key; a plain or
	// quoted scalar on the key's line.
	line := n.Line
	first := max(issues[0].line, 1)
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		line += first
	} else {
		line += first - 1
	}
	return nil, &LoadError{Source: p.source, Line: line, Path: path,
		Msg: fmt.Sprintf("invalid CEL expression %q: %s", truncate(src, 120), strings.Join(msgs, "; "))}
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// file walks the document root.
func (p *parser) file(doc *yaml.Node) (*Engine, error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, p.errf(doc, "", "empty policy file")
	}
	root := doc.Content[0]
	if isNull(root) {
		return nil, p.errf(root, "", "empty policy file")
	}
	var (
		hasVer   bool
		defaults = &layer{}
		tenants  = map[string]*layer{}
		defNode  *yaml.Node
	)
	err := p.mapping(root, "", false, func(key string, k, v *yaml.Node) error {
		switch key {
		case "version":
			n, err := p.integer(v, key)
			if err != nil {
				return err
			}
			if n != FormatVersion {
				return p.errf(v, key, "unsupported version %d (want %d)", n, FormatVersion)
			}
			hasVer = true
		case "defaults":
			defNode = v
			l, err := p.section(v, key)
			if err != nil {
				return err
			}
			defaults = l
		case "tenants":
			return p.mapping(v, key, true, func(id string, k, tv *yaml.Node) error {
				path := join(key, id)
				if _, err := p.name(k, path, "tenant id"); err != nil {
					return err
				}
				if len(tenants) >= maxTenants {
					return p.errf(k, path, "more than %d tenants", maxTenants)
				}
				l, err := p.section(tv, path)
				if err != nil {
					return err
				}
				tenants[id] = l
				return nil
			})
		default:
			return p.errf(k, key, "unknown key (want version, defaults, tenants)")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !hasVer {
		return nil, p.errf(root, "version", "missing (add `version: %d`)", FormatVersion)
	}

	base, err := p.builtin()
	if err != nil {
		return nil, err
	}
	def := base.with(defaults, "defaults")
	if err := p.checkPolicy(def, defNode, "defaults"); err != nil {
		return nil, err
	}
	e := &Engine{defaults: def, tenants: make(map[string]*compiledPolicy, len(tenants))}
	for id, l := range tenants {
		tp := def.with(l, "tenant:"+id)
		if err := p.checkPolicy(tp, l.node, "tenants."+id); err != nil {
			return nil, err
		}
		e.tenants[id] = tp
		e.tenantIDs = append(e.tenantIDs, id)
	}
	slices.Sort(e.tenantIDs)
	return e, nil
}

// builtin is what applies when the defaults section leaves a key out.
func (p *parser) builtin() (*compiledPolicy, error) {
	aw, iss := compileBool(p.env.post, `impact == "high"`)
	if iss != nil {
		return nil, fmt.Errorf("policy: built-in approval_when: %s", iss[0].msg)
	}
	dw, iss := compileBool(p.env.post, `false`)
	if iss != nil {
		return nil, fmt.Errorf("policy: built-in dry_run_when: %s", iss[0].msg)
	}
	return &compiledPolicy{
		name:           "defaults",
		quorum:         QuorumMajority,
		approvals:      1,
		approvalWhen:   aw,
		dryRunWhen:     dw,
		currency:       "USD",
		unknownActions: UnknownActionsRefuse,
	}, nil
}

// checkPolicy validates combinations that only make sense after merging.
func (p *parser) checkPolicy(cp *compiledPolicy, n *yaml.Node, path string) error {
	if len(cp.crossTenantTargets) > 0 && !cp.crossTenant {
		return p.errf(n, path, "cross_tenant_targets is set but cross_tenant is deny")
	}
	return nil
}

// layer is one section (defaults or a tenant) as written: nil = not set.
type layer struct {
	node               *yaml.Node
	quorum             *string
	quorumRules        *[]quorumRule
	regionWeights      *map[string]float64
	approvals          *int
	approvalWhen       *expr
	dryRunWhen         *expr
	maxCost            *float64
	currency           *string
	impactRules        *[]impactRule
	crossTenant        *bool
	crossTenantTargets *[]string
	timeout            *time.Duration
	unknownActions     *string
	approval           *approval.Rules
}

var sectionKeys = []string{"quorum", "quorum_rules", "region_weights", "approvals_required", "approval_when",
	"dry_run_when", "max_monthly_cost_delta", "currency", "impact_rules", "cross_tenant", "cross_tenant_targets",
	"decision_timeout_ms", "unknown_actions", "approval"}

var quorums = quorum.Rules

func ptr[T any](v T) *T { return &v }

func (p *parser) section(n *yaml.Node, path string) (*layer, error) {
	l := &layer{node: n}
	err := p.mapping(n, path, true, func(key string, k, v *yaml.Node) error {
		kp := join(path, key)
		if isNull(v) {
			return p.errf(v, kp, "has no value")
		}
		switch key {
		case "quorum":
			q, err := p.enum(v, kp, quorums...)
			if err != nil {
				return err
			}
			l.quorum = &q
		case "quorum_rules":
			rs, err := p.quorumRules(v, kp)
			if err != nil {
				return err
			}
			l.quorumRules = &rs
		case "region_weights":
			w := map[string]float64{}
			err := p.mapping(v, kp, false, func(region string, rk, rv *yaml.Node) error {
				rp := join(kp, region)
				if _, err := p.name(rk, rp, "region"); err != nil {
					return err
				}
				f, err := p.number(rv, rp)
				if err != nil {
					return err
				}
				if f <= 0 || f > 1e6 {
					return p.errf(rv, rp, "weight must be > 0 and <= 1000000")
				}
				w[region] = f
				return nil
			})
			if err != nil {
				return err
			}
			l.regionWeights = &w
		case "approvals_required":
			a, err := p.integer(v, kp)
			if err != nil {
				return err
			}
			if a < 1 || a > maxApprovals {
				return p.errf(v, kp, "must be between 1 and %d", maxApprovals)
			}
			l.approvals = ptr(int(a))
		case "approval_when":
			x, err := p.expression(v, kp, p.env.post)
			if err != nil {
				return err
			}
			l.approvalWhen = x
		case "dry_run_when":
			x, err := p.expression(v, kp, p.env.post)
			if err != nil {
				return err
			}
			l.dryRunWhen = x
		case "max_monthly_cost_delta":
			c, err := p.number(v, kp)
			if err != nil {
				return err
			}
			if c < 0 {
				return p.errf(v, kp, "must be >= 0 (0 = no cap)")
			}
			l.maxCost = &c
		case "currency":
			c, err := p.str(v, kp)
			if err != nil {
				return err
			}
			if len(c) != 3 || strings.ToUpper(c) != c || strings.IndexFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
				return p.errf(v, kp, "must be an ISO 4217 code such as USD or EUR, not %q", c)
			}
			l.currency = &c
		case "impact_rules":
			rs, err := p.impactRules(v, kp)
			if err != nil {
				return err
			}
			l.impactRules = &rs
		case "cross_tenant":
			c, err := p.enum(v, kp, "deny", "allow")
			if err != nil {
				return err
			}
			l.crossTenant = ptr(c == "allow")
		case "cross_tenant_targets":
			var ts []string
			err := p.sequence(v, kp, func(i int, tv *yaml.Node) error {
				t, err := p.name(tv, fmt.Sprintf("%s[%d]", kp, i), "tenant id")
				if err != nil {
					return err
				}
				if slices.Contains(ts, t) {
					return p.errf(tv, fmt.Sprintf("%s[%d]", kp, i), "duplicate tenant %q", t)
				}
				ts = append(ts, t)
				return nil
			})
			if err != nil {
				return err
			}
			slices.Sort(ts)
			l.crossTenantTargets = &ts
		case "decision_timeout_ms":
			ms, err := p.integer(v, kp)
			if err != nil {
				return err
			}
			if ms < 0 || time.Duration(ms)*time.Millisecond > MaxDecisionTimeout {
				return p.errf(v, kp, "must be between 1 and %d (0 = %s)", MaxDecisionTimeout.Milliseconds(), DecisionTimeoutEnv)
			}
			l.timeout = ptr(time.Duration(ms) * time.Millisecond)
		case "unknown_actions":
			u, err := p.enum(v, kp, UnknownActionsRefuse, UnknownActionsHigh)
			if err != nil {
				return err
			}
			l.unknownActions = &u
		case "approval":
			a, err := p.approvalBlock(v, kp)
			if err != nil {
				return err
			}
			l.approval = &a
		default:
			return p.errf(k, kp, "unknown key (want one of: %s)", strings.Join(sectionKeys, ", "))
		}
		return nil
	})
	return l, err
}

type ruleFields struct {
	name, target string // target: impact or quorum value
	reason       template
	when         *expr
}

// rules walks a list of {name, when, <targetKey>, reason} mappings.
func (p *parser) rules(n *yaml.Node, path string, env *cel.Env, tplVars []string, targetKey string, targets []string) ([]ruleFields, error) {
	var out []ruleFields
	names := map[string]bool{}
	err := p.sequence(n, path, func(i int, rn *yaml.Node) error {
		if i >= maxRules {
			return p.errf(rn, path, "more than %d rules", maxRules)
		}
		rp := fmt.Sprintf("%s[%d]", path, i)
		var (
			r          ruleFields
			whenNode   *yaml.Node
			reasonNode *yaml.Node
			hasTarget  bool
		)
		err := p.mapping(rn, rp, false, func(key string, k, v *yaml.Node) error {
			switch key {
			case "name":
				s, err := p.name(v, join(rp, key), "rule name")
				if err != nil {
					return err
				}
				r.name = s
			case "when":
				whenNode = v
			case "reason":
				reasonNode = v
			case targetKey:
				s, err := p.enum(v, join(rp, key), targets...)
				if err != nil {
					return err
				}
				r.target, hasTarget = s, true
			default:
				return p.errf(k, join(rp, key), "unknown key (want name, when, %s, reason)", targetKey)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if r.name == "" {
			return p.errf(rn, rp, "missing name")
		}
		rp = fmt.Sprintf("%s[%d] (%q)", path, i, r.name)
		if names[r.name] {
			return p.errf(rn, rp, "duplicate rule name %q", r.name)
		}
		names[r.name] = true
		if whenNode == nil {
			return p.errf(rn, rp, "missing when")
		}
		if !hasTarget {
			return p.errf(rn, rp, "missing %s", targetKey)
		}
		if r.when, err = p.expression(whenNode, rp+".when", env); err != nil {
			return err
		}
		// Without a reason, the expression itself explains the match.
		tpl := template{parts: []tplPart{{lit: truncate(r.when.src, 160)}}}
		if reasonNode != nil {
			s, err := p.str(reasonNode, rp+".reason")
			if err != nil {
				return err
			}
			if s = strings.TrimSpace(s); s == "" || len(s) > 500 {
				return p.errf(reasonNode, rp+".reason", "must be 1-500 characters")
			}
			if tpl, err = parseTemplate(s, tplVars); err != nil {
				return p.errf(reasonNode, rp+".reason", "%v", err)
			}
		}
		r.reason = tpl
		out = append(out, r)
		return nil
	})
	return out, err
}

func (p *parser) impactRules(n *yaml.Node, path string) ([]impactRule, error) {
	rs, err := p.rules(n, path, p.env.rule, ruleTemplateVars, "impact", []string{ImpactLow, ImpactMedium, ImpactHigh})
	if err != nil {
		return nil, err
	}
	out := make([]impactRule, len(rs))
	for i, r := range rs {
		out[i] = impactRule{name: r.name, when: r.when, impact: r.target, reason: r.reason}
	}
	return out, nil
}

func (p *parser) quorumRules(n *yaml.Node, path string) ([]quorumRule, error) {
	rs, err := p.rules(n, path, p.env.post, postTemplateVars, "quorum", quorums)
	if err != nil {
		return nil, err
	}
	out := make([]quorumRule, len(rs))
	for i, r := range rs {
		out[i] = quorumRule{name: r.name, when: r.when, quorum: r.target, reason: r.reason}
	}
	return out, nil
}

// compiledPolicy is the merged, compiled policy of one tenant (or the defaults).
type compiledPolicy struct {
	name               string
	quorum             string
	quorumRules        []quorumRule
	regionWeights      map[string]float64
	approvals          int
	approvalWhen       *expr
	dryRunWhen         *expr
	maxCost            float64
	currency           string
	impactRules        []impactRule
	crossTenant        bool // allow
	crossTenantTargets []string
	timeout            time.Duration  // 0 = engine default
	unknownActions     string         // UnknownActionsRefuse or UnknownActionsHigh
	approval           approval.Rules // the approval block; zero = the default rule
}

type impactRule struct {
	name   string
	when   *expr
	impact string
	reason template
}

type quorumRule struct {
	name   string
	when   *expr
	quorum string
	reason template
}

// with returns a copy of cp overridden by the keys l sets.
func (cp *compiledPolicy) with(l *layer, name string) *compiledPolicy {
	c := *cp
	c.name = name
	if l.quorum != nil {
		c.quorum = *l.quorum
	}
	if l.quorumRules != nil {
		c.quorumRules = *l.quorumRules
	}
	if l.regionWeights != nil {
		c.regionWeights = *l.regionWeights
	}
	if l.approvals != nil {
		c.approvals = *l.approvals
	}
	if l.approvalWhen != nil {
		c.approvalWhen = l.approvalWhen
	}
	if l.dryRunWhen != nil {
		c.dryRunWhen = l.dryRunWhen
	}
	if l.maxCost != nil {
		c.maxCost = *l.maxCost
	}
	if l.currency != nil {
		c.currency = *l.currency
	}
	if l.impactRules != nil {
		c.impactRules = *l.impactRules
	}
	if l.crossTenant != nil {
		c.crossTenant = *l.crossTenant
		if l.crossTenantTargets == nil {
			c.crossTenantTargets = nil // a new cross_tenant decision does not inherit a target list
		}
	}
	if l.crossTenantTargets != nil {
		c.crossTenantTargets = *l.crossTenantTargets
	}
	if l.timeout != nil {
		c.timeout = *l.timeout
	}
	if l.unknownActions != nil {
		c.unknownActions = *l.unknownActions
	}
	if l.approval != nil {
		c.approval = *l.approval
	}
	return &c
}

// crossTenantAllows reports whether this policy lets its tenant propose a
// change to target (P5).
func (cp *compiledPolicy) crossTenantAllows(target string) bool {
	if !cp.crossTenant {
		return false
	}
	if len(cp.crossTenantTargets) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(cp.crossTenantTargets, target)
	return ok
}
