package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/decision-fabric/fabric/internal/canonical"
)

// Negotiation states as stored. RUNNING is the only state that changes; the
// other three are terminal.
const (
	NegotiationRunning  = "RUNNING"
	NegotiationAgreed   = "AGREED"
	NegotiationRejected = "REJECTED"
	NegotiationExpired  = "EXPIRED"
)

// Verdicts as stored.
const (
	VerdictAccept  = "ACCEPT"
	VerdictReject  = "REJECT"
	VerdictCounter = "COUNTER"
	VerdictAbstain = "ABSTAIN"
)

// Negotiation is one multi-region negotiation of a proposal (I.4.3).
type Negotiation struct {
	ID             string // ULID (canonical upper-case), assigned by caller
	TenantID       string // required
	ProposalID     string // required; the proposal negotiated
	ProposalDigest string // lower-case hex SHA-256 of the proposal's manifest; what votes are signed over
	State          string // NegotiationRunning on Create; see Update
	QuorumRule     string // e.g. "MAJORITY"; required
	Round          int32  // current round, 1..MaxRounds
	MaxRounds      int32  // >= 1
	Offer          []byte // canonical JSON manifest of the current round's offer; stored byte-for-byte
	FinalManifest  []byte // canonical JSON; set exactly when State is NegotiationAgreed, else nil
	Reason         string // why it ended as it did ("" while running)
	// Regions are the voting regions in order, with the public keys that verify
	// their votes (kept so a verifier can check the votes later).
	Regions   []NegotiationRegion
	Deadline  time.Time // UTC; required
	Version   int64     // 1 on create, +1 per Update (input ignored)
	CreatedAt time.Time // UTC, store clock if zero
	UpdatedAt time.Time // UTC; CreatedAt on create, store clock on Update
}

// NegotiationRegion is one voting region of a negotiation.
type NegotiationRegion struct {
	Region    string `json:"region"`     // required, unique within the negotiation
	Weight    int64  `json:"weight"`     // >= 1
	KeyID     string `json:"key_id"`     // id of the key that signs the region's votes
	PublicKey string `json:"public_key"` // PEM "PUBLIC KEY" that verifies them
}

// NegotiationVote is one region's signed verdict in one round.
type NegotiationVote struct {
	NegotiationID string
	TenantID      string
	Round         int32
	Region        string
	Verdict       string // VerdictAccept, VerdictReject, VerdictCounter or VerdictAbstain
	Reason        string
	Counter       []byte // canonical JSON manifest; set exactly when Verdict is VerdictCounter
	Signature     string // required
	KeyID         string // required
	CastAt        time.Time
}

// NegotiationStore persists negotiations and their votes. Every method except
// ListRunning is tenant-scoped: another tenant's negotiation is ErrNotFound.
type NegotiationStore interface {
	// Create inserts n, which must be in state NegotiationRunning (n is not
	// modified). A duplicate ID is ErrConflict, and so is a second negotiation
	// of the same (TenantID, ProposalID), running or ended: a proposal is
	// negotiated once. Returns the stored row (Version 1).
	Create(ctx context.Context, n *Negotiation) (*Negotiation, error)
	// Get returns one negotiation of the tenant.
	Get(ctx context.Context, tenantID, id string) (*Negotiation, error)
	// ListByProposal returns a proposal's negotiation (at most one, see Create)
	// as a list, newest first (created_at, then id, descending); limit as in
	// ProposalStore.List.
	ListByProposal(ctx context.Context, tenantID, proposalID string, limit int) ([]*Negotiation, error)
	// ListRunning returns RUNNING negotiations of every tenant with an id
	// greater than afterID ("" for the first page), in id order. It is the
	// one cross-tenant read, for resuming work after a restart; never serve
	// its results to a caller without checking the tenant.
	ListRunning(ctx context.Context, afterID string, limit int) ([]*Negotiation, error)
	// Update writes the mutable fields of n (State, Round, Offer,
	// FinalManifest, Reason) if the stored negotiation is RUNNING, its version
	// equals expectedVersion and n.Round is not lower than the stored round;
	// otherwise ErrConflict (ErrNotFound if missing or another tenant's).
	// Terminal states are therefore final. n is not modified; the stored row
	// is returned (Version+1, UpdatedAt = store clock). The check and the
	// write are one atomic statement.
	Update(ctx context.Context, n *Negotiation, expectedVersion int64) (*Negotiation, error)
	// EndRound stores the votes of n's stored current round and writes n's
	// mutable fields as Update does, in one transaction (one commit): the
	// round's votes and its outcome (the next round, or the final state) land
	// together or not at all. Every vote must be of n's tenant and negotiation
	// and of the stored round (ErrInvalid otherwise); the guards and errors are
	// Update's (a stale version is ErrConflict and writes no vote), and a
	// region voting twice in the round is ErrConflict.
	EndRound(ctx context.Context, n *Negotiation, expectedVersion int64, votes []*NegotiationVote) (*Negotiation, error)
	// AddVote stores v if its negotiation is RUNNING and in round v.Round;
	// otherwise ErrConflict (ErrNotFound if the negotiation is missing or
	// another tenant's). A second vote of the same region in the same round is
	// ErrConflict. v is not modified; the stored vote is returned (CastAt =
	// store clock when zero). On Postgres the negotiation row is locked for
	// the insert, so a vote never lands after a concurrent Update ended its
	// round.
	AddVote(ctx context.Context, v *NegotiationVote) (*NegotiationVote, error)
	// ListVotes returns a negotiation's votes ordered by round, cast_at,
	// region; empty (not an error) when there are none or the negotiation is
	// another tenant's.
	ListVotes(ctx context.Context, tenantID, negotiationID string) ([]*NegotiationVote, error)
}

const negotiationCols = `id, tenant_id, proposal_id, proposal_digest, state, quorum_rule, round, max_rounds,
	offer, final_manifest, reason, regions, deadline, version, created_at, updated_at`

const voteCols = `negotiation_id, tenant_id, round, region, verdict, reason, counter, signature, key_id, cast_at`

const (
	sqlNegotiationInsert = `INSERT INTO negotiations (` + negotiationCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
	RETURNING ` + negotiationCols
	sqlNegotiationGet    = `SELECT ` + negotiationCols + ` FROM negotiations WHERE tenant_id = $1 AND id = $2`
	sqlNegotiationExists = `SELECT 1 FROM negotiations WHERE tenant_id = $1 AND id = $2`
	sqlNegotiationByProp = `SELECT ` + negotiationCols + ` FROM negotiations
	WHERE tenant_id = $1 AND proposal_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3`
	sqlNegotiationRunning = `SELECT ` + negotiationCols + ` FROM negotiations
	WHERE state = 'RUNNING' AND id > $1 ORDER BY id LIMIT $2`
	sqlNegotiationUpdate = `UPDATE negotiations
	SET state = $1, round = $2, offer = $3, final_manifest = $4, reason = $5, version = version + 1, updated_at = $6
	WHERE tenant_id = $7 AND id = $8 AND state = 'RUNNING' AND version = $9 AND round <= $2
	RETURNING ` + negotiationCols
	// Takes the negotiation's row lock (Postgres; SQLite has one writer) and
	// checks it still accepts votes for the round, without changing it.
	sqlNegotiationLockVersion = `UPDATE negotiations SET version = version
	WHERE tenant_id = $1 AND id = $2 AND state = 'RUNNING' AND round = $3 AND version = $4`
	sqlNegotiationLockRound = `UPDATE negotiations SET version = version
	WHERE tenant_id = $1 AND id = $2 AND state = 'RUNNING' AND round = $3`
	sqlVoteInsert = `INSERT INTO negotiation_votes (` + voteCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ` + voteCols
	sqlVoteList = `SELECT ` + voteCols + ` FROM negotiation_votes
	WHERE tenant_id = $1 AND negotiation_id = $2 ORDER BY round, cast_at, region`
)

func scanNegotiation(r row) (*Negotiation, error) {
	var n Negotiation
	var regions []byte
	err := r.Scan(&n.ID, &n.TenantID, &n.ProposalID, &n.ProposalDigest, &n.State, &n.QuorumRule, &n.Round,
		&n.MaxRounds, &n.Offer, &n.FinalManifest, &n.Reason, &regions, timeCol{&n.Deadline}, &n.Version,
		timeCol{&n.CreatedAt}, timeCol{&n.UpdatedAt})
	if err != nil {
		return nil, err
	}
	if len(n.FinalManifest) == 0 {
		n.FinalManifest = nil
	}
	if n.Regions, err = decodeRegions(regions); err != nil {
		return nil, fmt.Errorf("store: negotiation %s: regions: %w", n.ID, err)
	}
	return &n, nil
}

// decodedRegions remembers decoded regions columns, keyed by their stored JSON
// text: a negotiation's regions never change, yet every read and write of it
// (Get, Create, Update) scans them. Decoding is a pure function of the text,
// so the cache cannot answer for other content; it is bounded by entries.
var decodedRegions = func() *lru.Cache[string, []NegotiationRegion] {
	c, err := lru.New[string, []NegotiationRegion](regionsCacheSize)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return c
}()

const regionsCacheSize = 1024

// decodeRegions decodes a regions column. The caller owns the returned slice.
func decodeRegions(raw []byte) ([]NegotiationRegion, error) {
	if r, ok := decodedRegions.Get(string(raw)); ok {
		return slices.Clone(r), nil
	}
	var out []NegotiationRegion
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	decodedRegions.Add(string(raw), slices.Clone(out))
	return out, nil
}

func scanVote(r row) (*NegotiationVote, error) {
	var v NegotiationVote
	err := r.Scan(&v.NegotiationID, &v.TenantID, &v.Round, &v.Region, &v.Verdict, &v.Reason, &v.Counter,
		&v.Signature, &v.KeyID, timeCol{&v.CastAt})
	if err != nil {
		return nil, err
	}
	if len(v.Counter) == 0 {
		v.Counter = nil
	}
	return &v, nil
}

type negotiationStore struct{ s *sqlStore }

// nullJSON passes nil documents as SQL NULL on both backends.
func nullJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func (ns negotiationStore) Create(ctx context.Context, n *Negotiation) (*Negotiation, error) {
	s := ns.s
	r, regions, err := normalizeNegotiation(n)
	if err != nil {
		return nil, err
	}
	var stored *Negotiation
	err = s.write(ctx, func(w querier) (err error) {
		stored, err = scanNegotiation(w.queryRow(ctx, sqlNegotiationInsert,
			r.ID, r.TenantID, r.ProposalID, r.ProposalDigest, r.State, r.QuorumRule, r.Round, r.MaxRounds,
			r.Offer, nullJSON(r.FinalManifest), r.Reason, regions, s.drv.timeArg(r.Deadline), r.Version,
			s.drv.timeArg(r.CreatedAt), s.drv.timeArg(r.UpdatedAt)))
		return err
	})
	return stored, s.wrap("create negotiation", err)
}

func (ns negotiationStore) Get(ctx context.Context, tenantID, id string) (*Negotiation, error) {
	n, err := scanNegotiation(ns.s.r.queryRow(ctx, sqlNegotiationGet, tenantID, id))
	return n, ns.s.wrap("get negotiation", err)
}

func (ns negotiationStore) ListByProposal(ctx context.Context, tenantID, proposalID string, limit int) ([]*Negotiation, error) {
	rs, err := ns.s.r.query(ctx, sqlNegotiationByProp, tenantID, proposalID, listLimit(limit))
	if err != nil {
		return nil, ns.s.wrap("list negotiations", err)
	}
	out, err := collect(rs, scanNegotiation)
	return out, ns.s.wrap("list negotiations", err)
}

func (ns negotiationStore) ListRunning(ctx context.Context, afterID string, limit int) ([]*Negotiation, error) {
	rs, err := ns.s.r.query(ctx, sqlNegotiationRunning, afterID, listLimit(limit))
	if err != nil {
		return nil, ns.s.wrap("list running negotiations", err)
	}
	out, err := collect(rs, scanNegotiation)
	return out, ns.s.wrap("list running negotiations", err)
}

func (ns negotiationStore) Update(ctx context.Context, n *Negotiation, expectedVersion int64) (*Negotiation, error) {
	s := ns.s
	if err := checkNegotiationUpdate(n); err != nil {
		return nil, err
	}
	var stored *Negotiation
	var exists error
	err := s.write(ctx, func(w querier) (err error) {
		stored, err = scanNegotiation(w.queryRow(ctx, sqlNegotiationUpdate,
			n.State, n.Round, n.Offer, nullJSON(n.FinalManifest), n.Reason, s.drv.timeArg(now()),
			n.TenantID, n.ID, expectedVersion))
		if errors.Is(err, sql.ErrNoRows) {
			exists = existsIn(ctx, w, n.TenantID, n.ID)
		}
		return err
	})
	if err == nil {
		return stored, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap("update negotiation", err)
	}
	if exists != nil {
		return nil, s.wrap("update negotiation", exists)
	}
	return nil, s.wrap("update negotiation", fmt.Errorf(
		"%w: negotiation is not RUNNING, its version is not %d or its round is past %d", ErrConflict, expectedVersion, n.Round))
}

// existsIn is nil when the negotiation exists for the tenant, sql.ErrNoRows when not.
func existsIn(ctx context.Context, w querier, tenantID, id string) error {
	var one int
	return w.queryRow(ctx, sqlNegotiationExists, tenantID, id).Scan(&one)
}

func (ns negotiationStore) AddVote(ctx context.Context, v *NegotiationVote) (*NegotiationVote, error) {
	r, err := normalizeVote(v)
	if err != nil {
		return nil, err
	}
	var stored *NegotiationVote
	err = ns.s.InTx(ctx, func(tx Store) error {
		t := tx.(*sqlStore)
		n, err := t.w.exec(ctx, sqlNegotiationLockRound, r.TenantID, r.NegotiationID, r.Round)
		if err != nil {
			return t.wrap("add vote", err)
		}
		if n == 0 {
			if err := existsIn(ctx, t.w, r.TenantID, r.NegotiationID); err != nil {
				return t.wrap("add vote", err)
			}
			return t.wrap("add vote", fmt.Errorf("%w: negotiation is not RUNNING in round %d", ErrConflict, r.Round))
		}
		stored, err = scanVote(t.w.queryRow(ctx, sqlVoteInsert, r.NegotiationID, r.TenantID, r.Round, r.Region,
			r.Verdict, r.Reason, nullJSON(r.Counter), r.Signature, r.KeyID, t.drv.timeArg(r.CastAt)))
		return t.wrap("add vote", err)
	})
	return stored, err
}

func (ns negotiationStore) EndRound(ctx context.Context, n *Negotiation, expectedVersion int64, votes []*NegotiationVote) (*Negotiation, error) {
	if err := checkNegotiationUpdate(n); err != nil {
		return nil, err
	}
	rows := make([]*NegotiationVote, len(votes))
	for i, v := range votes {
		r, err := normalizeVote(v)
		if err != nil {
			return nil, err
		}
		if r.TenantID != n.TenantID || r.NegotiationID != n.ID {
			return nil, invalidf("votes[%d] is not a vote of negotiation %s", i, n.ID)
		}
		if i > 0 && r.Round != rows[0].Round {
			return nil, invalidf("votes[%d] is of round %d, votes[0] of round %d", i, r.Round, rows[0].Round)
		}
		rows[i] = r
	}
	var stored *Negotiation
	err := ns.s.InTx(ctx, func(tx Store) error {
		t := tx.(*sqlStore)
		if len(rows) > 0 {
			// The votes are of the stored round, which must be the one the version read saw.
			cur, err := scanNegotiation(t.w.queryRow(ctx, sqlNegotiationGet, n.TenantID, n.ID))
			if errors.Is(err, sql.ErrNoRows) {
				return t.wrap("end round", err)
			}
			if err != nil {
				return t.wrap("end round", err)
			}
			if cur.Round != rows[0].Round && cur.Version == expectedVersion {
				return invalidf("the votes are of round %d, the negotiation is in round %d", rows[0].Round, cur.Round)
			}
			k, err := t.w.exec(ctx, sqlNegotiationLockVersion, n.TenantID, n.ID, rows[0].Round, expectedVersion)
			if err != nil {
				return t.wrap("end round", err)
			}
			if k == 0 {
				return t.wrap("end round", fmt.Errorf("%w: negotiation is not RUNNING in round %d at version %d", ErrConflict, rows[0].Round, expectedVersion))
			}
			for _, r := range rows {
				if _, err := scanVote(t.w.queryRow(ctx, sqlVoteInsert, r.NegotiationID, r.TenantID, r.Round, r.Region,
					r.Verdict, r.Reason, nullJSON(r.Counter), r.Signature, r.KeyID, t.drv.timeArg(r.CastAt))); err != nil {
					return t.wrap("end round", err)
				}
			}
		}
		var err error
		stored, err = t.Negotiations().Update(ctx, n, expectedVersion)
		return err
	})
	if err != nil {
		return nil, err
	}
	return stored, nil
}

func (ns negotiationStore) ListVotes(ctx context.Context, tenantID, negotiationID string) ([]*NegotiationVote, error) {
	rs, err := ns.s.r.query(ctx, sqlVoteList, tenantID, negotiationID)
	if err != nil {
		return nil, ns.s.wrap("list votes", err)
	}
	out, err := collect(rs, scanVote)
	return out, ns.s.wrap("list votes", err)
}

func checkNegotiationState(state string) error {
	switch state {
	case NegotiationRunning, NegotiationAgreed, NegotiationRejected, NegotiationExpired:
		return nil
	}
	return invalidf("State %q is not RUNNING, AGREED, REJECTED or EXPIRED", state)
}

// checkFinal: a final manifest exactly when AGREED, and valid JSON.
func checkFinal(state string, final []byte) error {
	if (state == NegotiationAgreed) != (final != nil) {
		return invalidf("FinalManifest must be set exactly when State is AGREED")
	}
	if final != nil {
		return checkJSON("FinalManifest", final)
	}
	return nil
}

// normalizeNegotiation validates n and returns the row to insert (a copy) and
// its encoded regions.
func normalizeNegotiation(n *Negotiation) (*Negotiation, []byte, error) {
	if n == nil {
		return nil, nil, invalidf("nil negotiation")
	}
	r := *n
	if err := checkAll(
		checkULID("ID", r.ID),
		checkText("TenantID", r.TenantID, true),
		checkText("ProposalID", r.ProposalID, true),
		checkText("QuorumRule", r.QuorumRule, true),
		checkText("Reason", r.Reason, false),
		checkJSON("Offer", r.Offer),
		checkFinal(r.State, r.FinalManifest),
	); err != nil {
		return nil, nil, err
	}
	if r.State != NegotiationRunning {
		return nil, nil, invalidf("State %q: a negotiation is created RUNNING", r.State)
	}
	if !canonical.IsSHA256Hex(r.ProposalDigest) {
		return nil, nil, invalidf("ProposalDigest must be 64 lower-case hex characters")
	}
	if r.MaxRounds < 1 || r.Round < 1 || r.Round > r.MaxRounds {
		return nil, nil, invalidf("Round %d and MaxRounds %d: want 1 <= Round <= MaxRounds", r.Round, r.MaxRounds)
	}
	if r.Deadline.IsZero() {
		return nil, nil, invalidf("Deadline is required")
	}
	if len(r.Regions) == 0 {
		return nil, nil, invalidf("Regions: at least one voting region is required")
	}
	seen := map[string]bool{}
	for i, g := range r.Regions {
		if err := checkAll(
			checkText(fmt.Sprintf("Regions[%d].Region", i), g.Region, true),
			checkText(fmt.Sprintf("Regions[%d].KeyID", i), g.KeyID, false),
			checkText(fmt.Sprintf("Regions[%d].PublicKey", i), g.PublicKey, false),
		); err != nil {
			return nil, nil, err
		}
		if g.Weight < 1 {
			return nil, nil, invalidf("Regions[%d].Weight %d: want >= 1", i, g.Weight)
		}
		if seen[g.Region] {
			return nil, nil, invalidf("Regions[%d].Region %q: duplicate", i, g.Region)
		}
		seen[g.Region] = true
	}
	regions, err := json.Marshal(r.Regions)
	if err != nil {
		return nil, nil, invalidf("Regions: %v", err)
	}
	r.Regions = append([]NegotiationRegion(nil), r.Regions...)
	r.Offer = bytes.Clone(r.Offer)
	r.Version = 1
	r.Deadline = normTime(r.Deadline)
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now()
	}
	r.CreatedAt = normTime(r.CreatedAt)
	r.UpdatedAt = r.CreatedAt
	return &r, regions, nil
}

func checkNegotiationUpdate(n *Negotiation) error {
	if n == nil {
		return invalidf("nil negotiation")
	}
	if err := checkAll(
		checkNegotiationState(n.State),
		checkText("Reason", n.Reason, false),
		checkJSON("Offer", n.Offer),
		checkFinal(n.State, n.FinalManifest),
	); err != nil {
		return err
	}
	if n.Round < 1 {
		return invalidf("Round %d: want >= 1", n.Round)
	}
	return nil
}

func normalizeVote(v *NegotiationVote) (*NegotiationVote, error) {
	if v == nil {
		return nil, invalidf("nil vote")
	}
	r := *v
	if err := checkAll(
		checkULID("NegotiationID", r.NegotiationID),
		checkText("TenantID", r.TenantID, true),
		checkText("Region", r.Region, true),
		checkText("Reason", r.Reason, false),
		checkText("Signature", r.Signature, true),
		checkText("KeyID", r.KeyID, true),
	); err != nil {
		return nil, err
	}
	if r.Round < 1 {
		return nil, invalidf("Round %d: want >= 1", r.Round)
	}
	switch r.Verdict {
	case VerdictAccept, VerdictReject, VerdictCounter, VerdictAbstain:
	default:
		return nil, invalidf("Verdict %q is not ACCEPT, REJECT, COUNTER or ABSTAIN", r.Verdict)
	}
	if (r.Verdict == VerdictCounter) != (r.Counter != nil) {
		return nil, invalidf("Counter must be set exactly when Verdict is COUNTER")
	}
	if r.Counter != nil {
		if err := checkJSON("Counter", r.Counter); err != nil {
			return nil, err
		}
		r.Counter = bytes.Clone(r.Counter)
	}
	if r.CastAt.IsZero() {
		r.CastAt = now()
	}
	r.CastAt = normTime(r.CastAt)
	return &r, nil
}
