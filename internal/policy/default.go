package policy

import (
	_ "embed"
	"sync"
)

// DefaultPolicyYAML is the built-in policy file. policies/default.yaml at the
// repository root is an identical copy (a test keeps them in step).
//
//go:embed default.yaml
var DefaultPolicyYAML []byte

// DefaultSource names the built-in policy in errors and decisions.
const DefaultSource = "embedded:default.yaml"

var defaultEngine = sync.OnceValue(func() *Engine {
	e, err := Parse(DefaultPolicyYAML, DefaultSource)
	if err != nil {
		panic("policy: the built-in default policy does not load: " + err.Error())
	}
	return e
})

// Default returns the engine of the built-in policy. It is parsed once; its
// fallback negotiation deadline is PHASE_I4_DECISION_TIMEOUT_MS as set at the
// first call (use [Engine.WithDefaultDecisionTimeout] to pass the configured
// value explicitly).
func Default() *Engine { return defaultEngine() }
