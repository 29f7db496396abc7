package quorum_test

import (
	"testing"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/quorum"
)

// Every enum value but UNSPECIFIED has a name in Rules, and the three spellings map
// onto each other both ways.
func TestRuleVocabularyRoundTrips(t *testing.T) {
	if got, want := len(quorum.Rules), len(negotiatorv1.QuorumRule_name)-1; got != want {
		t.Fatalf("Rules has %d names, the enum %d rules", got, want)
	}
	for _, name := range quorum.Rules {
		r, err := quorum.ParseRule(name)
		if err != nil {
			t.Fatal(err)
		}
		if quorum.RuleName(r) != name || quorum.RuleFromStored(quorum.StoredRule(r)) != r || quorum.RuleOrUnspecified(name) != r {
			t.Errorf("%s does not round-trip: %v %q", name, r, quorum.StoredRule(r))
		}
	}
	for _, bad := range []string{"", "MAJORITY", "unspecified", "most"} {
		if _, err := quorum.ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
		if quorum.RuleOrUnspecified(bad) != negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED {
			t.Errorf("RuleOrUnspecified(%q) is not UNSPECIFIED", bad)
		}
	}
	if quorum.RuleName(negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED) != "" {
		t.Error("UNSPECIFIED has a name")
	}
}
