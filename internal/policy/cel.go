package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// EvalCostLimit bounds the run-time cost of one expression evaluation (CEL
// cost units, roughly one per operation). An expression that exceeds it fails
// with ErrEvaluation.
const EvalCostLimit = 100_000

// EvaluateCostLimit bounds the total run-time cost of all the expressions of
// one Evaluate, so that a policy with many rules stays bounded too.
const EvaluateCostLimit = 1_000_000

// MaxExpressionLength bounds the source of one expression, in code points.
const MaxExpressionLength = 4096

const (
	maxParamDepth = 32
	maxParamNodes = 10_000
)

// The CEL variables. impact and computed_impact exist only after the impact
// rules ran: in quorum_rules, approval_when and dry_run_when.
var (
	ruleVars = []cel.EnvOption{
		cel.Variable("tenant_id", cel.StringType),
		cel.Variable("action", cel.StringType),
		cel.Variable("target", cel.StringType),
		cel.Variable("regions", cel.ListType(cel.StringType)),
		cel.Variable("regions_count", cel.IntType),
		cel.Variable("declared_impact", cel.StringType),
		cel.Variable("parameters", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("replica_delta", cel.IntType),
		cel.Variable("abs_replica_delta", cel.IntType),
		cel.Variable("cost_delta_monthly", cel.DoubleType),
		cel.Variable("blast_radius", cel.DoubleType),
		cel.Variable("cross_tenant", cel.BoolType),
		cel.Variable("target_tenant", cel.StringType),
	}
	postVars = []cel.EnvOption{
		cel.Variable("impact", cel.StringType),
		cel.Variable("computed_impact", cel.StringType),
	}
)

// Scalar variables a reason template may interpolate ({name}). parameters is
// left out on purpose: manifest parameters may carry PII (P1).
var (
	ruleTemplateVars = []string{"tenant_id", "action", "target", "regions", "regions_count", "declared_impact",
		"replica_delta", "abs_replica_delta", "cost_delta_monthly", "blast_radius", "cross_tenant", "target_tenant"}
	postTemplateVars = append(slices.Clone(ruleTemplateVars), "impact", "computed_impact")
)

type envs struct{ rule, post *cel.Env }

// celEnvs builds the two environments once. Only deterministic libraries are
// enabled: the standard library has no clock or randomness, and neither do
// the strings, math, lists and sets extensions.
var celEnvs = sync.OnceValues(func() (envs, error) {
	base := []cel.EnvOption{
		ext.Strings(),
		ext.Math(),
		ext.Lists(ext.ListsMaxRangeSize(1000)),
		ext.Sets(),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(MaxExpressionLength),
	}
	rule, err := cel.NewEnv(append(base, ruleVars...)...)
	if err != nil {
		return envs{}, err
	}
	post, err := rule.Extend(postVars...)
	if err != nil {
		return envs{}, err
	}
	return envs{rule: rule, post: post}, nil
})

// expr is one compiled boolean expression.
type expr struct {
	src string
	prg cel.Program
}

// celIssue is a compile error with its position inside the expression.
type celIssue struct {
	line, col int // 1-based line, 0-based column, within the expression
	msg       string
}

// compileBool compiles src in env and requires a bool result.
func compileBool(env *cel.Env, src string) (*expr, []celIssue) {
	ast, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		var out []celIssue
		for _, e := range iss.Errors() {
			out = append(out, celIssue{line: e.Location.Line(), col: e.Location.Column(), msg: e.Message})
		}
		if len(out) == 0 {
			out = append(out, celIssue{line: 1, msg: iss.Err().Error()})
		}
		return nil, out
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, []celIssue{{line: 1, msg: fmt.Sprintf("expression must be bool, but has type %s", t)}}
	}
	prg, err := env.Program(ast,
		cel.CostLimit(EvalCostLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, []celIssue{{line: 1, msg: err.Error()}}
	}
	return &expr{src: src, prg: prg}, nil
}

func (x *expr) eval(act *activation) (bool, error) {
	out, det, err := x.prg.Eval(act)
	if det != nil {
		if c := det.ActualCost(); c != nil {
			act.cost += *c
		}
	}
	if act.paramErr != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalidInput, act.paramErr)
	}
	if err != nil {
		return false, err
	}
	if act.cost > act.budget {
		return false, fmt.Errorf("total cost %d of this evaluation exceeds the budget of %d", act.cost, act.budget)
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression returned %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// activation resolves the CEL variables from the normalised input. Values
// are built on first use and shared by every expression of one evaluation.
type activation struct {
	f    *facts
	vals [numVars]ref.Val
	// paramErr records a parameters conversion failure; parameters are only
	// converted when an expression reads them.
	paramErr error
	// cost is the CEL cost spent so far by this evaluation, budget its bound.
	cost, budget uint64
}

const (
	vTenantID = iota
	vAction
	vTarget
	vRegions
	vRegionsCount
	vDeclaredImpact
	vParameters
	vReplicaDelta
	vAbsReplicaDelta
	vCostDeltaMonthly
	vBlastRadius
	vCrossTenant
	vTargetTenant
	vImpact
	vComputedImpact
	numVars
)

var varIndex = map[string]int{
	"tenant_id": vTenantID, "action": vAction, "target": vTarget, "regions": vRegions,
	"regions_count": vRegionsCount, "declared_impact": vDeclaredImpact, "parameters": vParameters,
	"replica_delta": vReplicaDelta, "abs_replica_delta": vAbsReplicaDelta,
	"cost_delta_monthly": vCostDeltaMonthly, "blast_radius": vBlastRadius, "cross_tenant": vCrossTenant,
	"target_tenant": vTargetTenant, "impact": vImpact, "computed_impact": vComputedImpact,
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveName(name string) (any, bool) {
	i, ok := varIndex[name]
	if !ok {
		return nil, false
	}
	if v := a.vals[i]; v != nil {
		return v, true
	}
	f := a.f
	var v ref.Val
	switch i {
	case vTenantID:
		v = types.String(f.in.TenantID)
	case vAction:
		v = types.String(f.in.Action)
	case vTarget:
		v = types.String(f.in.Target)
	case vRegions:
		v = types.NewStringList(types.DefaultTypeAdapter, f.regions)
	case vRegionsCount:
		v = types.Int(len(f.regions))
	case vDeclaredImpact:
		v = types.String(f.declared)
	case vParameters:
		pv, err := paramsValue(f.in.Parameters)
		if err != nil {
			a.paramErr = err
			return types.NewErr("invalid parameters: %v", err), true
		}
		v = pv
	case vReplicaDelta:
		v = types.Int(f.in.ReplicaDelta)
	case vAbsReplicaDelta:
		v = types.Int(f.absDelta)
	case vCostDeltaMonthly:
		v = types.Double(f.in.CostDeltaMonthly)
	case vBlastRadius:
		v = types.Double(f.in.BlastRadius)
	case vCrossTenant:
		v = types.Bool(f.crossTenant)
	case vTargetTenant:
		v = types.String(f.targetTenant)
	case vImpact:
		if f.impact == "" { // not known yet: never cached
			return types.String(""), true
		}
		v = types.String(f.impact)
	case vComputedImpact:
		if f.computedImpact == "" {
			return types.String(""), true
		}
		v = types.String(f.computedImpact)
	}
	a.vals[i] = v
	return v, true
}

// text renders a variable for a reason template.
func (a *activation) text(name string) string {
	f := a.f
	var s string
	switch name {
	case "regions":
		s = strings.Join(f.regions, ", ")
	case "regions_count":
		s = strconv.Itoa(len(f.regions))
	case "replica_delta":
		s = strconv.FormatInt(f.in.ReplicaDelta, 10)
	case "abs_replica_delta":
		s = strconv.FormatInt(f.absDelta, 10)
	case "cost_delta_monthly":
		s = money(f.in.CostDeltaMonthly)
	case "blast_radius":
		s = strconv.FormatFloat(f.in.BlastRadius, 'f', -1, 64)
	case "cross_tenant":
		s = strconv.FormatBool(f.crossTenant)
	default:
		if v, ok := a.ResolveName(name); ok {
			if str, ok := v.(types.String); ok {
				s = string(str)
			}
		}
	}
	const maxLen = 200
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "") + "…"
	}
	return s
}

// template is a reason with {variable} placeholders, parsed at load time.
type template struct {
	parts []tplPart
}

type tplPart struct {
	lit, name string // exactly one is set
}

// parseTemplate splits s on {identifier} placeholders; an identifier that is
// not one of allowed is an error. Braces around anything else stay literal.
func parseTemplate(s string, allowed []string) (template, error) {
	var t template
	lit := strings.Builder{}
	for i := 0; i < len(s); {
		if s[i] == '{' {
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9' && j > i+1) {
				j++
			}
			if j < len(s) && s[j] == '}' && j > i+1 {
				name := s[i+1 : j]
				if !slices.Contains(allowed, name) {
					return template{}, fmt.Errorf("unknown placeholder {%s} (allowed: %s)", name, strings.Join(allowed, ", "))
				}
				if lit.Len() > 0 {
					t.parts = append(t.parts, tplPart{lit: lit.String()})
					lit.Reset()
				}
				t.parts = append(t.parts, tplPart{name: name})
				i = j + 1
				continue
			}
		}
		lit.WriteByte(s[i])
		i++
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, tplPart{lit: lit.String()})
	}
	return t, nil
}

func (t template) render(a *activation) string {
	if len(t.parts) == 1 && t.parts[0].name == "" {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.name != "" {
			b.WriteString(a.text(p.name))
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// sortedMap is a CEL map whose iteration order is its sorted keys, so that
// comprehensions over `parameters` (e.g. parameters.map(k, k)) are
// deterministic. Go map order is random.
type sortedMap struct {
	traits.Mapper
	keys traits.Lister
}

func (m sortedMap) Iterator() traits.Iterator { return m.keys.Iterator() }

var emptyParams = newSortedMap(map[ref.Val]ref.Val{}, nil)

func newSortedMap(m map[ref.Val]ref.Val, keys []string) ref.Val {
	slices.Sort(keys)
	kv := make([]ref.Val, len(keys))
	for i, k := range keys {
		kv[i] = types.String(k)
	}
	return sortedMap{
		Mapper: types.NewRefValMap(types.DefaultTypeAdapter, m),
		keys:   types.NewRefValList(types.DefaultTypeAdapter, kv),
	}
}

var errTooBig = errors.New("too large or too deeply nested")

// paramsValue converts manifest parameters into a deterministic CEL value.
func paramsValue(p map[string]any) (ref.Val, error) {
	if len(p) == 0 {
		return emptyParams, nil
	}
	budget := maxParamNodes
	return toVal(reflect.ValueOf(p), "", 0, &budget)
}

var refValType = reflect.TypeFor[ref.Val]()

func toVal(v reflect.Value, path string, depth int, budget *int) (ref.Val, error) {
	*budget--
	if depth > maxParamDepth || *budget < 0 {
		return nil, fmt.Errorf("%s: %w", cmpPath(path), errTooBig)
	}
	if !v.IsValid() {
		return types.NullValue, nil
	}
	if v.Kind() == reflect.Interface {
		if v.IsNil() {
			return types.NullValue, nil
		}
		v = v.Elem()
	}
	if v.Type().Implements(refValType) {
		return v.Interface().(ref.Val), nil
	}
	switch x := v.Interface().(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return types.Int(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s: bad number %q", cmpPath(path), x)
		}
		return types.Double(f), nil
	case time.Time, time.Duration, []byte:
		return types.DefaultTypeAdapter.NativeToValue(x), nil
	}
	switch v.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return types.DefaultTypeAdapter.NativeToValue(v.Interface()), nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s: map keys must be strings, not %s", cmpPath(path), v.Type().Key())
		}
		if v.IsNil() {
			return types.NullValue, nil
		}
		m := make(map[ref.Val]ref.Val, v.Len())
		keys := make([]string, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			k := it.Key().String()
			e, err := toVal(it.Value(), path+"."+k, depth+1, budget)
			if err != nil {
				return nil, err
			}
			m[types.String(k)] = e
			keys = append(keys, k)
		}
		return newSortedMap(m, keys), nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return types.NullValue, nil
		}
		elems := make([]ref.Val, v.Len())
		for i := range elems {
			e, err := toVal(v.Index(i), path+"["+strconv.Itoa(i)+"]", depth+1, budget)
			if err != nil {
				return nil, err
			}
			elems[i] = e
		}
		return types.NewRefValList(types.DefaultTypeAdapter, elems), nil
	case reflect.Pointer:
		if v.IsNil() {
			return types.NullValue, nil
		}
		return toVal(v.Elem(), path, depth+1, budget)
	}
	return nil, fmt.Errorf("%s: unsupported type %s", cmpPath(path), v.Type())
}

func cmpPath(p string) string {
	if p == "" {
		return "parameters"
	}
	return "parameters" + p
}
