// Package policy is the decision-policy engine of the fabric: the part of
// P1–P7 that is configuration rather than code.
//
// A policy file (YAML, strictly decoded) holds defaults and per-tenant
// overrides. Rules are CEL expressions compiled and type-checked when the
// file is loaded; a bad rule is rejected with its file and line. For every
// proposal [Engine.Evaluate] decides:
//
//   - the impact: the higher of the declared impact and the one computed by
//     the tenant's impact rules (blast radius, regions, size, cost);
//   - the quorum rule of the negotiation (majority, two_thirds, unanimous,
//     weighted) and, for weighted, the region weights;
//   - whether a human must approve, and how many approvals (M of N) — always
//     when the impact is high (P3);
//   - the dry-run default: true for high impact until an approver is
//     recorded (P3);
//   - the monthly cost cap: a proposal over it is refused
//     ([ErrCostCapExceeded]);
//   - the cross-tenant gate: a proposal aimed at another tenant is refused
//     unless the policy allows it ([ErrCrossTenantDenied], P5);
//   - the negotiation deadline (P6), PHASE_I4_DECISION_TIMEOUT_MS unless the
//     policy sets one.
//
// [Engine.ApprovalRules] returns a tenant's approval rules (the `approval:`
// block: sets of rules with approve/deny thresholds and reviewer filters, for
// package approval), or the default rule when the policy names none.
//
// Evaluation is deterministic (no clock, no randomness, map parameters are
// iterated in key order) and bounded (a CEL cost limit per expression). An
// [Engine] is immutable and safe for concurrent use.
//
// The file format is documented in docs/policies/decision_policy.md; the
// built-in default is default.yaml in this directory, kept identical to
// policies/default.yaml at the repository root.
package policy
