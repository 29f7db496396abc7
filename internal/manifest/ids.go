// The grammar of proposal ids.

package manifest

import "github.com/decision-fabric/fabric/internal/auditlog"

// ValidProposalID reports whether id is a proposal id as the coordinator issues them:
// a canonical ULID, 26 characters of Crockford's base 32 in upper case
// (^[0-9A-HJKMNP-TV-Z]{26}$). The coordinator's API and the scorer accept only these.
func ValidProposalID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z' && c != 'I' && c != 'L' && c != 'O' && c != 'U':
		default:
			return false
		}
	}
	return true
}

// ValidProposalRef reports whether id may name a proposal in the services that keep
// records under a caller's proposal id without issuing it (the negotiator's
// negotiations, the audit log's entries): 1-128 of A-Z a-z 0-9 . _ : -, starting with a
// letter or digit (^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$). Every ValidProposalID is one.
// It is the audit log's rule (auditlog.ValidProposalID), stated once.
func ValidProposalRef(id string) bool { return auditlog.ValidProposalID(id) }
