package store

import "github.com/decision-fabric/fabric/internal/fabric"

// Who owns which tables. Each service reads and writes only its own tables; what another
// service needs from them travels in requests (docs/architecture.md, "Who owns which
// tables"). The accessors of Store are the only way to the tables, so ownership is
// declared per accessor, and tests/boundaries checks every call of one against it.

// OwnerWorld owns the simulated world's table: an external system (the world the
// fabric changes) that the simulation keeps in the store. Only internal/world reads and
// writes it, for the services that enact (coordinator) and plan (scorer) through it;
// outside simulation the world is a tenant's webhook and the table is unused.
const OwnerWorld = "world (simulated external system)"

// Ownership is who owns an accessor's tables, and which tables they are.
type Ownership struct {
	Owner  string // a service name (internal/fabric) or OwnerWorld
	Tables []string
}

// Owners maps each accessor of Store to its tables' owner.
var Owners = map[string]Ownership{
	"Proposals":    {Owner: fabric.Coordinator, Tables: []string{"proposals"}},
	"Snapshots":    {Owner: fabric.Coordinator, Tables: []string{"snapshots"}},
	"Outbox":       {Owner: fabric.Coordinator, Tables: []string{"audit_outbox"}},
	"EventOutbox":  {Owner: fabric.Coordinator, Tables: []string{"event_outbox"}},
	"Negotiations": {Owner: fabric.Negotiator, Tables: []string{"negotiations", "negotiation_votes"}},
	"AuditLog":     {Owner: fabric.Auditor, Tables: []string{"audit_entries", "audit_checkpoints"}},
	"WorldStates":  {Owner: OwnerWorld, Tables: []string{"world_states"}},
	"MFA":          {Owner: fabric.HIL, Tables: []string{"mfa_totp"}},
	"Approvals":    {Owner: fabric.HIL, Tables: []string{"approval_requests", "notification_outbox"}},
	"WebAuthn":     {Owner: fabric.HIL, Tables: []string{"webauthn_credentials", "webauthn_sessions"}},
	"CanaryRuns":   {Owner: fabric.Canary, Tables: []string{"canary_runs"}},
}

// PackageOwners names the owner of the shared packages (under internal/) that call
// accessors on a service's behalf; their calls count as that owner's. A package under
// internal/ that calls an accessor must be listed here.
var PackageOwners = map[string]string{
	"internal/auditlog": fabric.Auditor,
	"internal/world":    OwnerWorld,
	"internal/mfa":      fabric.HIL,
	"internal/events":   fabric.Coordinator,
}
