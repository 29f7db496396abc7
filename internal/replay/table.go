package replay

import (
	"fmt"
	"strings"
	"text/tabwriter"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
)

// maxReasonWidth bounds the table's last column; the full reasons are in the JSON.
const maxReasonWidth = 160

// Table renders results as plain text with aligned columns, one decision a line, the
// first reason last (the full list is in the JSON), then the not-found ids.
func Table(results []*canaryv1.ReplayResult, notFound []string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "PROPOSAL\tCHANGE\tRECORDED\tCANDIDATE\tCHANGED\tVERIFIED\tIMPACT\tAPPROVALS\tQUORUM\tWHY")
	for _, r := range results {
		changed, verified, quorumCol := "no", "yes", "-"
		if r.GetChanged() {
			changed = "YES"
		}
		if !r.GetVerified() {
			verified = "NO"
		}
		if r.QuorumReached != nil {
			quorumCol = map[bool]string{true: "reached", false: "not reached"}[r.GetQuorumReached()]
		}
		why := ""
		if len(r.GetReasons()) > 0 {
			why = r.GetReasons()[0]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s→%s\t%d/%d\t%s\t%s\n", r.GetProposalId(), cell(r.GetChange(), 40),
			r.GetRecordedOutcome(), r.GetCandidateOutcome(), changed, verified,
			dash(r.GetRecordedImpact()), dash(r.GetCandidateImpact()), r.GetApprovalsRecorded(), r.GetApprovalsRequired(),
			quorumCol, cell(why, maxReasonWidth))
	}
	_ = w.Flush()
	for _, id := range notFound {
		fmt.Fprintf(&b, "%s: not found\n", id)
	}
	return b.String()
}

// cell keeps a value on one line and within n runes.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
