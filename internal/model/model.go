// Package model is the fabric's model provider: the "Neural Fabric" that suggests
// changes (for the proposal composer) and assesses how likely a proposed change is to
// succeed (for the confidence scorer).
//
// Two providers implement [Provider]: [NewHTTP] talks to a Neural Fabric service at
// NEURAL_FABRIC_URL, and [NewSimulated] is a deterministic, rule-based stand-in used in
// simulation mode and tests. Callers depend on the interface only.
//
// Contracts every Provider MUST keep:
//
//   - A returned Assessment has SuccessProbability finite and in [0,1], and a
//     non-empty Model name; a returned Suggestion has a non-empty Action, Confidence
//     in [0,1] and Impact "", "low", "medium" or "high". Anything else is an error,
//     never a value.
//   - Errors never carry request bodies or credentials; they name the operation and,
//     for HTTP, the status code.
//   - Requests are not modified.
package model

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/decision-fabric/fabric/internal/policy"
)

// SuggestRequest asks for a suggested change. JSON form (the Neural Fabric API body):
//
//	{"tenant_id":"t1","context":"reduce cost","target":"serviceX","regions":["eu-west"],
//	 "metric_hints":{"cpu":0.35}}
type SuggestRequest struct {
	TenantID string   `json:"tenant_id"`
	Context  string   `json:"context"`
	Target   string   `json:"target"`
	Regions  []string `json:"regions"`
	// MetricHints are current readings the caller knows, by name. The simulated provider
	// reads "cpu", "latency" and "scale" as saturations in [0,1] and "error_rate" as a
	// fraction; an HTTP provider passes them on unchanged.
	MetricHints map[string]float64 `json:"metric_hints"`
}

// Suggestion is a suggested change.
type Suggestion struct {
	Action     string         `json:"action"`
	Parameters map[string]any `json:"parameters"`
	// Impact is "", "low", "medium" or "high".
	Impact string `json:"impact"`
	// Confidence in [0,1] that the suggestion fits the request.
	Confidence float64 `json:"confidence"`
	Rationale  string  `json:"rationale"`
}

// AssessRequest asks how likely a change is to succeed. JSON form:
//
//	{"tenant_id":"t1","action":"scale","target":"serviceX","regions":["eu-west"],
//	 "parameters":{"replicas_delta":2}}
type AssessRequest struct {
	TenantID   string         `json:"tenant_id"`
	Action     string         `json:"action"`
	Target     string         `json:"target"`
	Regions    []string       `json:"regions"`
	Parameters map[string]any `json:"parameters"`
}

// Assessment is the model's verdict on a change.
type Assessment struct {
	// SuccessProbability in [0,1].
	SuccessProbability float64 `json:"success_probability"`
	Rationale          string  `json:"rationale"`
	// Model names the model (and version) that produced the verdict.
	Model string `json:"model"`
}

// Provider suggests and assesses changes.
type Provider interface {
	Suggest(ctx context.Context, r SuggestRequest) (Suggestion, error)
	Assess(ctx context.Context, r AssessRequest) (Assessment, error)
	// Name identifies the provider in logs and explanations ("simulated", "neural-fabric").
	Name() string
}

// ErrInvalidResponse wraps every answer that breaks the contract above (bad JSON,
// probability out of range, missing action). Callers branch on it with errors.Is.
var ErrInvalidResponse = errors.New("model: invalid response")

func validProbability(p float64) bool { return !math.IsNaN(p) && p >= 0 && p <= 1 }

// validateSuggestion enforces the Suggestion contract.
func validateSuggestion(s Suggestion) error {
	switch {
	case s.Action == "":
		return fmt.Errorf("%w: suggestion without action", ErrInvalidResponse)
	case !validProbability(s.Confidence):
		return fmt.Errorf("%w: confidence %v is not in [0,1]", ErrInvalidResponse, s.Confidence)
	}
	switch s.Impact {
	case "", policy.ImpactLow, policy.ImpactMedium, policy.ImpactHigh:
	default:
		return fmt.Errorf("%w: impact %q is not low, medium or high", ErrInvalidResponse, s.Impact)
	}
	return nil
}

// validateAssessment enforces the Assessment contract.
func validateAssessment(a Assessment) error {
	switch {
	case !validProbability(a.SuccessProbability):
		return fmt.Errorf("%w: success_probability %v is not in [0,1]", ErrInvalidResponse, a.SuccessProbability)
	case a.Model == "":
		return fmt.Errorf("%w: assessment without model name", ErrInvalidResponse)
	}
	return nil
}
