package quorum

import (
	"fmt"
	"strings"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
)

// The quorum vocabulary has three spellings, and this file is the only place that maps
// between them:
//
//   - the name ("majority"): policies, regions.yaml, certificates, the coordinator's
//     decision record (RuleMajority ... RuleWeighted);
//   - the enum (negotiator.v1.QuorumRule): the negotiator's API;
//   - the stored form ("MAJORITY"): the negotiator's negotiations table.

// Rules are the rule names, in the enum's order.
var Rules = []string{RuleMajority, RuleTwoThirds, RuleUnanimous, RuleWeighted}

// RuleName is the name of a rule ("majority"); "" for QUORUM_RULE_UNSPECIFIED or an
// unknown value.
func RuleName(r negotiatorv1.QuorumRule) string {
	if r == negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED {
		return ""
	}
	name, ok := negotiatorv1.QuorumRule_name[int32(r)]
	if !ok {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(name, "QUORUM_RULE_"))
}

// ParseRule parses a rule name ("majority", "two_thirds", "unanimous", "weighted").
func ParseRule(name string) (negotiatorv1.QuorumRule, error) {
	v, ok := negotiatorv1.QuorumRule_value["QUORUM_RULE_"+strings.ToUpper(name)]
	if !ok || v == int32(negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED) || name != strings.ToLower(name) {
		return 0, fmt.Errorf("quorum rule %q: want %s", name, strings.Join(Rules, ", "))
	}
	return negotiatorv1.QuorumRule(v), nil
}

// RuleOrUnspecified is ParseRule with "" (and any unknown name) as
// QUORUM_RULE_UNSPECIFIED: the callee's default rule.
func RuleOrUnspecified(name string) negotiatorv1.QuorumRule {
	r, err := ParseRule(name)
	if err != nil {
		return negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED
	}
	return r
}

// StoredRule is the stored form of a rule ("MAJORITY").
func StoredRule(r negotiatorv1.QuorumRule) string {
	return strings.TrimPrefix(r.String(), "QUORUM_RULE_")
}

// RuleFromStored parses the stored form; an unknown one is QUORUM_RULE_UNSPECIFIED.
func RuleFromStored(s string) negotiatorv1.QuorumRule {
	return negotiatorv1.QuorumRule(negotiatorv1.QuorumRule_value["QUORUM_RULE_"+s])
}
