package auth

import "github.com/decision-fabric/fabric/internal/redact"

// Actor is the principal's subject as the fabric stores, logs and traces it:
// redacted like every other value (an e-mail address as a subject becomes
// "<REDACTED:email>"), exactly as the audit log records its actors. Use it, never
// Subject, wherever the subject leaves the request.
func (p *Principal) Actor() string {
	if p == nil {
		return ""
	}
	return redact.String(p.Subject)
}
