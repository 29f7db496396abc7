package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// ApprovalRequest is a proposal waiting for (or having had) human approval in the
// hil-gateway.
type ApprovalRequest struct {
	TenantID        string // required
	ProposalID      string // required
	Impact          string // as the coordinator classified it ("low", ..., "critical")
	Summary         string // "<action> <target> in <regions>": never parameters or personal data
	ApprovalsNeeded int    // > 0
	Deadline        time.Time
	ReminderAt      time.Time // zero: no reminder
	CreatedAt       time.Time // UTC; store clock when zero
	ResolvedAt      time.Time // zero while open (input ignored by OpenRequest)
	Outcome         string    // "" while open, else one of the Outcome* constants
}

// Outcomes of a resolved approval request.
const (
	OutcomeApproved = "APPROVED"
	OutcomeDenied   = "DENIED"
	OutcomeExpired  = "EXPIRED"
)

// Notification kinds the store knows about: Resolve cancels the unsent ones of
// NotificationCancelledKinds. They match internal/notify's kinds.
const (
	NotificationReminder   = "reminder"
	NotificationEscalation = "escalation"
)

// NotificationCancelledKinds are cancelled by ApprovalStore.Resolve while unsent.
var NotificationCancelledKinds = []string{NotificationReminder, NotificationEscalation}

// CancelledResolved is the LastError of a notification cancelled by Resolve.
const CancelledResolved = "resolved"

// MaxNotificationError bounds Notification.LastError, in characters; longer texts
// are cut.
const MaxNotificationError = 500

// Notification is one message about one approval request on one channel, in the
// hil-gateway's notification outbox.
type Notification struct {
	Seq        int64  // assigned by the store
	EventID    string // required; stable per event. (EventID, Channel) is queued at most once
	Channel    string // required: the channel's configured name
	TenantID   string // required
	ProposalID string // required
	Kind       string // required: "request", "reminder", "escalation", "resolved"
	Payload    []byte // JSON object (the notify.Message); stored byte for byte
	// NotBefore is the earliest time the notification may be sent (zero: at once, the
	// store clock).
	NotBefore time.Time
	// The delivery state (input ignored when enqueued): Attempts counts claims,
	// NextAttemptAt is the earliest next claim, LeaseOwner/LeaseUntil the deliverer
	// holding the row, SentAt/DeadAt (zero: not yet) end it, LastError is the last
	// failure or CancelledResolved.
	Attempts      int
	NextAttemptAt time.Time
	LeaseOwner    string
	LeaseUntil    time.Time
	SentAt        time.Time
	DeadAt        time.Time
	LastError     string
	CreatedAt     time.Time
}

// ApprovalStore persists the hil-gateway's approval requests and its notification
// outbox. Request methods are tenant-scoped (another tenant's request is ErrNotFound);
// the outbox delivery methods (ClaimDue, MarkSent, MarkFailed) and ListOpenAll serve
// every tenant, for the gateway's deliverer and sweeper.
type ApprovalStore interface {
	// OpenRequest inserts r and enqueues notes in one transaction. When the request
	// already exists (same tenant and proposal) nothing changes and created is false
	// (the coordinator may ask twice after a crash). Every note must be of r's tenant
	// and proposal. Neither r nor notes are modified.
	OpenRequest(ctx context.Context, r *ApprovalRequest, notes []*Notification) (created bool, err error)
	// GetRequest returns the request; ErrNotFound if none.
	GetRequest(ctx context.Context, tenantID, proposalID string) (*ApprovalRequest, error)
	// ListOpen returns the tenant's unresolved requests, oldest first (limit<=0 ->
	// 100, capped at MaxListLimit).
	ListOpen(ctx context.Context, tenantID string, limit int) ([]*ApprovalRequest, error)
	// ListOpenAll returns every tenant's unresolved requests whose deadline or reminder
	// is at or before before, earliest deadline first (same limit rule).
	ListOpenAll(ctx context.Context, before time.Time, limit int) ([]*ApprovalRequest, error)
	// Resolve records outcome at at, once: a resolved request is ErrConflict and
	// nothing changes. In the same transaction it cancels the proposal's unsent
	// reminders and escalations (dead, LastError CancelledResolved) and enqueues notes.
	Resolve(ctx context.Context, tenantID, proposalID, outcome string, at time.Time, notes []*Notification) error
	// MarkReminded clears the open request's ReminderAt (so ListOpenAll no longer
	// returns it for its reminder) and enqueues notes, in one transaction. A request
	// that is resolved or has no reminder is ErrConflict and nothing changes.
	MarkReminded(ctx context.Context, tenantID, proposalID string, notes []*Notification) error
	// Enqueue queues notes; one whose (EventID, Channel) is already queued is ignored.
	Enqueue(ctx context.Context, notes []*Notification) error
	// ClaimDue leases to owner until leaseUntil at most limit notifications, oldest
	// first, that are neither sent nor dead, whose NotBefore and NextAttemptAt are at
	// or before now and that no one holds a lease on at now; it counts the attempt
	// and returns them with their new state. Concurrent claimers never get the same
	// row (Postgres: FOR UPDATE SKIP LOCKED; SQLite has one writer).
	ClaimDue(ctx context.Context, owner string, now, leaseUntil time.Time, limit int) ([]*Notification, error)
	// MarkSent records the notification as sent at at, if owner still holds it (it
	// was not claimed by another since, sent, or cancelled): else ErrConflict
	// (ErrNotFound when there is no such row).
	MarkSent(ctx context.Context, seq int64, owner string, at time.Time) error
	// MarkFailed records a failed attempt by owner (same precondition as MarkSent):
	// the lease ends, LastError becomes errText (cut to MaxNotificationError
	// characters), and the notification is due again at nextAttempt, or, if dead, is
	// given up (DeadAt = store clock).
	MarkFailed(ctx context.Context, seq int64, owner, errText string, nextAttempt time.Time, dead bool) error
	// ListNotifications returns the tenant's proposal's notifications in Seq order
	// (for the gateway's status page and tests).
	ListNotifications(ctx context.Context, tenantID, proposalID string) ([]*Notification, error)
}

// Approvals implements Store.
func (s *sqlStore) Approvals() ApprovalStore { return approvalStore{s} }

const (
	approvalCols       = `tenant_id, proposal_id, impact, summary, approvals_needed, deadline, reminder_at, created_at, resolved_at, outcome`
	sqlApprovalGet     = `SELECT ` + approvalCols + ` FROM approval_requests WHERE tenant_id = $1 AND proposal_id = $2`
	sqlApprovalListOpn = `SELECT ` + approvalCols + ` FROM approval_requests WHERE tenant_id = $1 AND resolved_at IS NULL
	ORDER BY created_at, proposal_id LIMIT $2`
	sqlApprovalListDue = `SELECT ` + approvalCols + ` FROM approval_requests
	WHERE resolved_at IS NULL AND (deadline <= $1 OR reminder_at <= $1)
	ORDER BY deadline, tenant_id, proposal_id LIMIT $2`
	sqlApprovalInsert = `INSERT INTO approval_requests (tenant_id, proposal_id, impact, summary, approvals_needed, deadline, reminder_at, created_at, resolved_at, outcome)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, '') ON CONFLICT (tenant_id, proposal_id) DO NOTHING`
	sqlApprovalReminded = `UPDATE approval_requests SET reminder_at = NULL
	WHERE tenant_id = $1 AND proposal_id = $2 AND resolved_at IS NULL AND reminder_at IS NOT NULL`
	sqlApprovalResolve = `UPDATE approval_requests SET resolved_at = $3, outcome = $4
	WHERE tenant_id = $1 AND proposal_id = $2 AND resolved_at IS NULL`

	notificationCols = `seq, event_id, channel, tenant_id, proposal_id, kind, payload, not_before, attempts, next_attempt_at,
	lease_owner, lease_until, sent_at, dead_at, last_error, created_at`
	sqlNotificationInsert = `INSERT INTO notification_outbox (event_id, channel, tenant_id, proposal_id, kind, payload, not_before,
	next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) ON CONFLICT (event_id, channel) DO NOTHING`
	sqlNotificationCancel = `UPDATE notification_outbox SET dead_at = $3, last_error = '` + CancelledResolved + `'
	WHERE tenant_id = $1 AND proposal_id = $2 AND sent_at IS NULL AND dead_at IS NULL AND kind IN ($4, $5)`
	sqlNotificationGet  = `SELECT ` + notificationCols + ` FROM notification_outbox WHERE seq = $1`
	sqlNotificationList = `SELECT ` + notificationCols + ` FROM notification_outbox WHERE tenant_id = $1 AND proposal_id = $2 ORDER BY seq`
	// $1 seq, $2 owner.
	notificationHeld    = `seq = $1 AND lease_owner = $2 AND sent_at IS NULL AND dead_at IS NULL`
	sqlNotificationSent = `UPDATE notification_outbox SET sent_at = $3, lease_until = NULL WHERE ` + notificationHeld
	sqlNotificationFail = `UPDATE notification_outbox SET lease_until = NULL, last_error = $3, next_attempt_at = $4, dead_at = $5
	WHERE ` + notificationHeld
)

type approvalStore struct{ s *sqlStore }

func scanApproval(r row) (*ApprovalRequest, error) {
	var a ApprovalRequest
	var needed int64
	err := r.Scan(&a.TenantID, &a.ProposalID, &a.Impact, &a.Summary, &needed, timeCol{&a.Deadline},
		nullTimeCol{&a.ReminderAt}, timeCol{&a.CreatedAt}, nullTimeCol{&a.ResolvedAt}, &a.Outcome)
	if err != nil {
		return nil, err
	}
	a.ApprovalsNeeded = int(needed)
	return &a, nil
}

func scanNotification(r row) (*Notification, error) {
	var n Notification
	var attempts int64
	err := r.Scan(&n.Seq, &n.EventID, &n.Channel, &n.TenantID, &n.ProposalID, &n.Kind, &n.Payload,
		timeCol{&n.NotBefore}, &attempts, timeCol{&n.NextAttemptAt}, &n.LeaseOwner, nullTimeCol{&n.LeaseUntil},
		nullTimeCol{&n.SentAt}, nullTimeCol{&n.DeadAt}, &n.LastError, timeCol{&n.CreatedAt})
	if err != nil {
		return nil, err
	}
	n.Attempts = int(attempts)
	return &n, nil
}

func checkApprovalRequest(r *ApprovalRequest) error {
	if r == nil {
		return invalidf("nil approval request")
	}
	if err := checkAll(
		checkText("TenantID", r.TenantID, true),
		checkText("ProposalID", r.ProposalID, true),
		checkText("Impact", r.Impact, false),
		checkText("Summary", r.Summary, false),
	); err != nil {
		return err
	}
	switch {
	case r.ApprovalsNeeded <= 0:
		return invalidf("ApprovalsNeeded must be positive")
	case r.Deadline.IsZero():
		return invalidf("Deadline is required")
	}
	return nil
}

func checkNotifications(notes []*Notification) error {
	for i, n := range notes {
		if n == nil {
			return invalidf("notes[%d] is nil", i)
		}
		if err := checkAll(
			checkText("EventID", n.EventID, true),
			checkText("Channel", n.Channel, true),
			checkText("TenantID", n.TenantID, true),
			checkText("ProposalID", n.ProposalID, true),
			checkText("Kind", n.Kind, true),
			checkJSONObject("Payload", n.Payload),
		); err != nil {
			return fmt.Errorf("notes[%d]: %w", i, err)
		}
	}
	return nil
}

// checkNotesOf checks that every note is of the tenant's proposal.
func checkNotesOf(notes []*Notification, tenantID, proposalID string) error {
	for i, n := range notes {
		if n.TenantID != tenantID || n.ProposalID != proposalID {
			return invalidf("notes[%d] is not of proposal %s of tenant %s", i, proposalID, tenantID)
		}
	}
	return nil
}

// enqueue inserts notes through w, ignoring duplicates.
func (as approvalStore) enqueue(ctx context.Context, w querier, notes []*Notification) error {
	created := now()
	for _, n := range notes {
		notBefore := created
		if !n.NotBefore.IsZero() {
			notBefore = normTime(n.NotBefore)
		}
		if _, err := w.exec(ctx, sqlNotificationInsert, n.EventID, n.Channel, n.TenantID, n.ProposalID, n.Kind,
			n.Payload, as.s.drv.timeArg(notBefore), as.s.drv.timeArg(created)); err != nil {
			return err
		}
	}
	return nil
}

func (as approvalStore) OpenRequest(ctx context.Context, r *ApprovalRequest, notes []*Notification) (bool, error) {
	if err := checkAll(checkApprovalRequest(r), checkNotifications(notes)); err != nil {
		return false, err
	}
	if err := checkNotesOf(notes, r.TenantID, r.ProposalID); err != nil {
		return false, err
	}
	created := now()
	if !r.CreatedAt.IsZero() {
		created = normTime(r.CreatedAt)
	}
	var inserted bool
	err := as.s.InTx(ctx, func(tx Store) error {
		t := tx.(*sqlStore)
		n, err := t.w.exec(ctx, sqlApprovalInsert, r.TenantID, r.ProposalID, r.Impact, r.Summary, r.ApprovalsNeeded,
			t.drv.timeArg(normTime(r.Deadline)), t.leaseArg(r.ReminderAt), t.drv.timeArg(created))
		if err != nil || n == 0 {
			return err // n == 0: it exists; change nothing
		}
		inserted = true
		return approvalStore{t}.enqueue(ctx, t.w, notes)
	})
	if err != nil {
		return false, as.s.wrap("open approval request", err)
	}
	return inserted, nil
}

func (as approvalStore) GetRequest(ctx context.Context, tenantID, proposalID string) (*ApprovalRequest, error) {
	a, err := scanApproval(as.s.r.queryRow(ctx, sqlApprovalGet, tenantID, proposalID))
	return a, as.s.wrap("get approval request", err)
}

func (as approvalStore) list(ctx context.Context, op, q string, args ...any) ([]*ApprovalRequest, error) {
	rs, err := as.s.r.query(ctx, q, args...)
	if err != nil {
		return nil, as.s.wrap(op, err)
	}
	out, err := collect(rs, scanApproval)
	return out, as.s.wrap(op, err)
}

func (as approvalStore) ListOpen(ctx context.Context, tenantID string, limit int) ([]*ApprovalRequest, error) {
	if err := checkText("tenantID", tenantID, true); err != nil {
		return nil, err
	}
	return as.list(ctx, "list open approval requests", sqlApprovalListOpn, tenantID, listLimit(limit))
}

func (as approvalStore) ListOpenAll(ctx context.Context, before time.Time, limit int) ([]*ApprovalRequest, error) {
	return as.list(ctx, "list due approval requests", sqlApprovalListDue, as.s.drv.timeArg(normTime(before)), listLimit(limit))
}

func (as approvalStore) Resolve(ctx context.Context, tenantID, proposalID, outcome string, at time.Time, notes []*Notification) error {
	switch outcome {
	case OutcomeApproved, OutcomeDenied, OutcomeExpired:
	default:
		return invalidf("outcome %q is not %s, %s or %s", outcome, OutcomeApproved, OutcomeDenied, OutcomeExpired)
	}
	if err := checkNotifications(notes); err != nil {
		return err
	}
	if err := checkNotesOf(notes, tenantID, proposalID); err != nil {
		return err
	}
	if at.IsZero() {
		at = now()
	}
	atArg := as.s.drv.timeArg(normTime(at))
	err := as.s.InTx(ctx, func(tx Store) error {
		t := tx.(*sqlStore)
		n, err := t.w.exec(ctx, sqlApprovalResolve, tenantID, proposalID, atArg, outcome)
		if err != nil {
			return err
		}
		if n == 0 {
			if _, err := scanApproval(t.w.queryRow(ctx, sqlApprovalGet, tenantID, proposalID)); err != nil {
				return err
			}
			return fmt.Errorf("%w: approval request %s is already resolved", ErrConflict, proposalID)
		}
		if _, err := t.w.exec(ctx, sqlNotificationCancel, tenantID, proposalID, atArg,
			NotificationCancelledKinds[0], NotificationCancelledKinds[1]); err != nil {
			return err
		}
		return approvalStore{t}.enqueue(ctx, t.w, notes)
	})
	return as.s.wrap("resolve approval request", err)
}

func (as approvalStore) MarkReminded(ctx context.Context, tenantID, proposalID string, notes []*Notification) error {
	if err := checkNotifications(notes); err != nil {
		return err
	}
	if err := checkNotesOf(notes, tenantID, proposalID); err != nil {
		return err
	}
	err := as.s.InTx(ctx, func(tx Store) error {
		t := tx.(*sqlStore)
		n, err := t.w.exec(ctx, sqlApprovalReminded, tenantID, proposalID)
		if err != nil {
			return err
		}
		if n == 0 {
			if _, err := scanApproval(t.w.queryRow(ctx, sqlApprovalGet, tenantID, proposalID)); err != nil {
				return err
			}
			return fmt.Errorf("%w: approval request %s is resolved or has no reminder", ErrConflict, proposalID)
		}
		return approvalStore{t}.enqueue(ctx, t.w, notes)
	})
	return as.s.wrap("mark approval request reminded", err)
}

func (as approvalStore) Enqueue(ctx context.Context, notes []*Notification) error {
	if err := checkNotifications(notes); err != nil || len(notes) == 0 {
		return err
	}
	err := as.s.InTx(ctx, func(tx Store) error {
		t := tx.(*sqlStore)
		return approvalStore{t}.enqueue(ctx, t.w, notes)
	})
	return as.s.wrap("enqueue notifications", err)
}

func (as approvalStore) ClaimDue(ctx context.Context, owner string, at, leaseUntil time.Time, limit int) ([]*Notification, error) {
	if err := checkText("owner", owner, true); err != nil {
		return nil, err
	}
	if leaseUntil.IsZero() || !leaseUntil.After(at) {
		return nil, invalidf("leaseUntil must be after now")
	}
	if limit <= 0 {
		return []*Notification{}, nil
	}
	lock := ""
	if as.s.drv.name() == BackendPostgres {
		// Rows another claimer has locked are skipped, not waited for: each claimer
		// leaves with a disjoint set.
		lock = " FOR UPDATE SKIP LOCKED"
	}
	q := `UPDATE notification_outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
	WHERE seq IN (SELECT seq FROM notification_outbox
		WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3 AND not_before <= $3
		  AND (lease_until IS NULL OR lease_until < $3)
		ORDER BY seq LIMIT $4` + lock + `)
	RETURNING ` + notificationCols
	var out []*Notification
	err := as.s.write(ctx, func(w querier) error {
		rs, err := w.query(ctx, q, owner, as.s.drv.timeArg(normTime(leaseUntil)), as.s.drv.timeArg(normTime(at)), min(limit, MaxListLimit))
		if err != nil {
			return err
		}
		out, err = collect(rs, scanNotification)
		return err
	})
	if err != nil {
		return nil, as.s.wrap("claim notifications", err)
	}
	slices.SortFunc(out, func(a, b *Notification) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// held runs the guarded update q for seq and owner, telling a missing row from a lost lease.
func (as approvalStore) held(ctx context.Context, op, q string, seq int64, owner string, args ...any) error {
	if err := checkText("owner", owner, true); err != nil {
		return err
	}
	err := as.s.write(ctx, func(w querier) error {
		n, err := w.exec(ctx, q, append([]any{seq, owner}, args...)...)
		if err != nil || n > 0 {
			return err
		}
		if _, err := scanNotification(w.queryRow(ctx, sqlNotificationGet, seq)); err != nil {
			return err
		}
		return fmt.Errorf("%w: notification %d is not held by %s (claimed by another, sent or cancelled)", ErrConflict, seq, owner)
	})
	return as.s.wrap(op, err)
}

func (as approvalStore) MarkSent(ctx context.Context, seq int64, owner string, at time.Time) error {
	if at.IsZero() {
		at = now()
	}
	return as.held(ctx, "mark notification sent", sqlNotificationSent, seq, owner, as.s.drv.timeArg(normTime(at)))
}

func (as approvalStore) MarkFailed(ctx context.Context, seq int64, owner, errText string, nextAttempt time.Time, dead bool) error {
	var deadAt any
	if dead {
		deadAt = as.s.drv.timeArg(now())
	} else if nextAttempt.IsZero() {
		return invalidf("nextAttempt is required unless dead")
	}
	if nextAttempt.IsZero() {
		nextAttempt = now()
	}
	return as.held(ctx, "mark notification failed", sqlNotificationFail, seq, owner,
		boundedError(errText), as.s.drv.timeArg(normTime(nextAttempt)), deadAt)
}

func (as approvalStore) ListNotifications(ctx context.Context, tenantID, proposalID string) ([]*Notification, error) {
	rs, err := as.s.r.query(ctx, sqlNotificationList, tenantID, proposalID)
	if err != nil {
		return nil, as.s.wrap("list notifications", err)
	}
	out, err := collect(rs, scanNotification)
	return out, as.s.wrap("list notifications", err)
}

// boundedError makes errText storable: valid UTF-8 without NUL, at most
// MaxNotificationError characters.
func boundedError(errText string) string {
	errText = strings.ToValidUTF8(strings.ReplaceAll(errText, "\x00", ""), "\uFFFD")
	if utf8.RuneCountInString(errText) <= MaxNotificationError {
		return errText
	}
	r := []rune(errText)
	return string(r[:MaxNotificationError-1]) + "…"
}
