package negotiator

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/store"
)

// The round loop. One goroutine per negotiation runs its rounds under a
// context that ends at the negotiation's deadline, or earlier when the service
// closes. Its guarantees:
//
//   - A round's votes are kept in memory while it runs (GetNegotiationStatus and
//     WatchNegotiation see them through s.pending) and stored together with the
//     round's outcome, the next round or the final state, in one transaction
//     (EndRound, version-guarded) before the outcome is reported: a negotiation
//     decided in its first round costs two commits, its creation and its end. A
//     restart mid-round loses only the unstored votes, and the resumed round asks
//     those regions again (their signed votes are deterministic per round).
//   - A negotiation ends exactly once: the terminal EndRound is guarded by the
//     version read, and a loser (another process, a resumed copy) stops.
//   - On Close, rounds stop without a verdict: the negotiation stays RUNNING.
//     Only the deadline ends one as EXPIRED.

// Timing of retries and of the terminal write.
const (
	retryFirst    = 50 * time.Millisecond
	retryMax      = 2 * time.Second
	finishTimeout = 10 * time.Second
)

// errSuperseded: another writer moved the negotiation on; this goroutine stops.
var errSuperseded = errors.New("negotiator: negotiation changed by another writer")

// launch starts n's rounds in the background unless the service is closing or
// already runs n. It reports whether it started them.
func (s *Service) launch(n *store.Negotiation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.active[n.ID] {
		return false
	}
	s.active[n.ID] = true
	s.metrics.running.Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.active, n.ID)
			s.mu.Unlock()
			s.metrics.running.Dec()
		}()
		s.run(n)
	}()
	return true
}

// run drives n from its current round to an outcome.
func (s *Service) run(n *store.Negotiation) {
	ctx, cancel := context.WithTimeout(s.base, n.Deadline.Sub(s.now()))
	defer cancel()
	log := s.log.With("negotiation_id", n.ID, "tenant_id", n.TenantID, "proposal_id", n.ProposalID)
	rule := qc.RuleFromStored(n.QuorumRule)
	weights := make([]RegionWeight, len(n.Regions))
	for i, r := range n.Regions {
		weights[i] = RegionWeight{Region: r.Region, Weight: r.Weight}
	}

	offer, err := unmarshalManifest(n.Offer)
	if err != nil {
		log.Error("unreadable stored offer", "error", err)
		s.finish(n, store.NegotiationRejected, nil, "internal error: the stored offer is unreadable", nil)
		return
	}
	defer s.setPending(n.ID, nil)
	have, err := s.storedVotes(ctx, n)
	var fresh []*store.NegotiationVote // the round's votes not stored yet
	for err == nil {
		var outcome Outcome
		var reason string
		outcome, reason, have, fresh, err = s.round(ctx, n, rule, weights, offer, have)
		if err != nil {
			break
		}
		switch outcome {
		case OutcomeAgreed:
			s.finish(n, store.NegotiationAgreed, n.Offer, reason, fresh)
			return
		case OutcomeRejected:
			s.finish(n, store.NegotiationRejected, nil, reason, fresh)
			return
		}
		// Undecided: merge the counters into the next round's offer.
		if n.Round >= n.MaxRounds {
			s.finish(n, store.NegotiationRejected, nil, fmt.Sprintf("no agreement after %d rounds: %s", n.Round, reason), fresh)
			return
		}
		next, changes := MergeCounters(rule, weights, offer, have)
		if len(changes) == 0 {
			s.finish(n, store.NegotiationRejected, nil, "the counter-offers cannot move the offer: "+reason, fresh)
			return
		}
		nextJSON, cerr := canonical.Proto(next)
		if cerr != nil {
			err = cerr
			break
		}
		upd := *n
		upd.Round, upd.Offer = n.Round+1, nextJSON
		var stored *store.Negotiation
		err = s.retry(ctx, func(ctx context.Context) (err error) {
			stored, err = s.deps.Store.Negotiations().EndRound(ctx, &upd, n.Version, fresh)
			return err
		})
		if errors.Is(err, store.ErrConflict) {
			err = errSuperseded
		}
		if err != nil {
			break
		}
		log.InfoContext(ctx, "next round", "round", stored.Round, "changes", strings.Join(changes, "; "))
		n, offer, have, fresh = stored, next, nil, nil
		s.setPending(n.ID, nil)
		s.hub.publish(n.ID)
	}

	switch {
	case errors.Is(context.Cause(ctx), errClosing):
		log.Info("negotiation paused by shutdown; it resumes at the next start", "round", n.Round)
	case errors.Is(err, errSuperseded):
		log.Info("negotiation moved on elsewhere; this runner stops", "round", n.Round)
	case ctx.Err() != nil:
		s.finish(n, store.NegotiationExpired, nil, expiryReason(n, have), s.getPending(n.ID))
	default:
		// Not retryable (the negotiation vanished, or a bug). Left RUNNING, it
		// is expired by sweepOrphans after its deadline, or by Resume.
		log.Error("negotiation stopped", "round", n.Round, "error", err)
	}
}

// expiryReason says where the deadline caught a negotiation.
func expiryReason(n *store.Negotiation, have []Vote) string {
	answered := map[string]bool{}
	for _, v := range have {
		answered[v.Region] = true
	}
	var missing []string
	for _, r := range n.Regions {
		if !answered[r.Region] {
			missing = append(missing, r.Region)
		}
	}
	reason := fmt.Sprintf("the deadline of %s passed in round %d with %d of %d votes in",
		n.Deadline.Sub(n.CreatedAt).Round(time.Millisecond), n.Round, len(answered), len(n.Regions))
	if len(missing) > 0 {
		reason += "; no answer from " + strings.Join(missing, ", ")
	}
	return reason
}

// storedVotes returns the votes already stored for n's current round (a
// resumed negotiation continues from them).
func (s *Service) storedVotes(ctx context.Context, n *store.Negotiation) ([]Vote, error) {
	var stored []*store.NegotiationVote
	err := s.retry(ctx, func(ctx context.Context) (err error) {
		stored, err = s.deps.Store.Negotiations().ListVotes(ctx, n.TenantID, n.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []Vote
	for _, sv := range stored {
		if sv.Round != n.Round {
			continue
		}
		v, err := fromStoreVote(sv)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// round collects the votes of n's current round until Tally decides it.
// have are the votes already stored for the round; the others are asked. It
// returns every vote of the round and, apart, the new ones to store.
func (s *Service) round(ctx context.Context, n *store.Negotiation, rule negotiatorv1.QuorumRule, weights []RegionWeight,
	offer *typesv1.Manifest, have []Vote) (Outcome, string, []Vote, []*store.NegotiationVote, error) {
	if o, why := Tally(rule, weights, have); o != OutcomePending {
		return o, why, have, nil, nil
	}
	// Agents still asking when the round is decided are cancelled on return.
	rctx, cancel := context.WithCancel(ctx)
	var asking sync.WaitGroup
	defer func() { cancel(); asking.Wait() }()

	answered := map[string]bool{}
	for _, v := range have {
		answered[v.Region] = true
	}
	o := Offer{NegotiationID: n.ID, TenantID: n.TenantID, ProposalID: n.ProposalID,
		ProposalDigest: n.ProposalDigest, Round: n.Round, Manifest: offer, Deadline: n.Deadline}
	results := make(chan Vote, len(n.Regions)) // each region answers at most once: sends never block
	for _, r := range n.Regions {
		if answered[r.Region] {
			continue
		}
		agent, ok := s.agents[r.Region]
		key, err := parseVoterKey(r.PublicKey)
		if !ok || err != nil {
			// The region left the configuration since the negotiation started
			// (or its stored key is unreadable): it cannot answer.
			s.log.Warn("region cannot vote", "negotiation_id", n.ID, "region", r.Region, "configured", ok, "error", err)
			continue
		}
		asking.Add(1)
		go func() {
			defer asking.Done()
			s.ask(rctx, agent, key, o, results)
		}()
	}
	var fresh []*store.NegotiationVote
	for {
		select {
		case <-ctx.Done():
			return OutcomePending, "", have, fresh, ctx.Err()
		case v := <-results:
			sv, err := s.recordVote(n, v)
			if err != nil {
				return OutcomePending, "", have, fresh, err
			}
			have, fresh = append(have, v), append(fresh, sv)
			s.setPending(n.ID, fresh)
			if o, why := Tally(rule, weights, have); o != OutcomePending {
				return o, why, have, fresh, nil
			}
		}
	}
}

// ask gets one valid vote from agent, retrying failed or invalid answers with
// backoff until ctx ends. It sends at most one vote on out.
func (s *Service) ask(ctx context.Context, agent Agent, key voterKey, o Offer, out chan<- Vote) {
	wait := retryFirst
	for {
		v, err := agent.Vote(ctx, o)
		if err == nil {
			err = checkVote(v, o, agent.Region(), key)
		}
		if err == nil {
			out <- v
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("region vote failed; retrying", "negotiation_id", o.NegotiationID, "region", agent.Region(),
			"round", o.Round, "error", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, retryMax)
	}
}

// voterKey is the key a negotiation recorded for a region, parsed once per round.
type voterKey struct {
	pub ed25519.PublicKey
	id  string // regionkeys.KeyID(pub)
}

// parseVoterKey parses a region's recorded PEM "PUBLIC KEY".
func parseVoterKey(pemText string) (voterKey, error) {
	pub, err := regionkeys.ParsePublicKeyPEM(pemText)
	if err != nil {
		return voterKey{}, err
	}
	return voterKey{pub: pub, id: regionkeys.KeyID(pub)}, nil
}

// checkVote accepts a vote only if it answers this offer, is well formed and
// carries a valid signature by the key the negotiation recorded for the region.
func checkVote(v Vote, o Offer, region string, key voterKey) error {
	if v.Region != region || v.Round != o.Round {
		return fmt.Errorf("vote is for region %q round %d, want %q round %d", v.Region, v.Round, region, o.Round)
	}
	switch v.Verdict {
	case negotiatorv1.Verdict_VERDICT_ACCEPT, negotiatorv1.Verdict_VERDICT_REJECT, negotiatorv1.Verdict_VERDICT_ABSTAIN:
		if v.Counter != nil {
			return fmt.Errorf("a %s vote carries a counter-offer", verdictName(v.Verdict))
		}
	case negotiatorv1.Verdict_VERDICT_COUNTER:
		if v.Counter == nil {
			return errors.New("a COUNTER vote without a counter-offer")
		}
	default:
		return fmt.Errorf("verdict %v is not ACCEPT, REJECT, COUNTER or ABSTAIN", v.Verdict)
	}
	if v.KeyID != key.id {
		return fmt.Errorf("vote signed with key %q, want the region's key %q", v.KeyID, key.id)
	}
	return VerifyVote(key.pub, o.ProposalDigest, o.Round, region, v.Verdict, v.Signature)
}

// recordVote turns v into the stored form for n's current round; it is stored with
// the round's outcome (EndRound).
func (s *Service) recordVote(n *store.Negotiation, v Vote) (*store.NegotiationVote, error) {
	sv := &store.NegotiationVote{NegotiationID: n.ID, TenantID: n.TenantID, Round: n.Round, Region: v.Region,
		Verdict: verdictName(v.Verdict), Reason: truncate(cleanText(v.Reason), maxReasonLen),
		Signature: v.Signature, KeyID: v.KeyID, CastAt: s.now()}
	if v.Counter != nil {
		var err error
		if sv.Counter, err = canonical.Proto(v.Counter); err != nil {
			return nil, fmt.Errorf("negotiator: canonical counter-offer: %w", err)
		}
	}
	s.metrics.votes.WithLabelValues(strings.ToLower(sv.Verdict)).Inc()
	return sv, nil
}

// setPending records the current round's unstored votes of negotiation id, for
// readers (nil clears them).
func (s *Service) setPending(id string, votes []*store.NegotiationVote) {
	s.mu.Lock()
	if len(votes) == 0 {
		delete(s.pending, id)
	} else {
		s.pending[id] = slices.Clone(votes)
	}
	s.mu.Unlock()
	if len(votes) > 0 {
		s.hub.publish(id)
	}
}

// getPending returns the current round's unstored votes of negotiation id.
func (s *Service) getPending(id string) []*store.NegotiationVote {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.pending[id])
}

// cleanText makes an agent's text storable: valid UTF-8 without NUL bytes.
func cleanText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// finish stores n's outcome with the votes of its last round not stored yet, in
// one transaction. It runs under its own bounded context (the negotiation's may
// just have ended) and is a no-op when another writer ended n first. On success
// it records metrics, wakes watchers and calls OnFinished.
func (s *Service) finish(n *store.Negotiation, state string, final []byte, reason string, votes []*store.NegotiationVote) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), finishTimeout)
	defer cancel()
	log := s.log.With("negotiation_id", n.ID, "tenant_id", n.TenantID, "proposal_id", n.ProposalID)
	upd := *n
	upd.State, upd.FinalManifest, upd.Reason = state, final, reason
	var stored *store.Negotiation
	err := s.retry(ctx, func(ctx context.Context) (err error) {
		stored, err = s.deps.Store.Negotiations().EndRound(ctx, &upd, n.Version, votes)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		log.Debug("negotiation already ended elsewhere")
		return
	}
	if err != nil {
		log.Error("could not store the outcome; the negotiation stays RUNNING until it is resumed or read after its deadline",
			"state", state, "error", err)
		return
	}
	outcome := strings.ToLower(state)
	s.metrics.duration.WithLabelValues(outcome).Observe(s.now().Sub(n.CreatedAt).Seconds())
	s.metrics.rounds.WithLabelValues(outcome).Observe(float64(n.Round))
	s.hub.publish(n.ID)
	log.Info("negotiation ended", "state", state, "round", n.Round, "reason", reason)
	if s.deps.OnFinished != nil {
		s.notifyFinished(ctx, log, stored)
	}
}

// notifyFinished calls OnFinished with the final negotiation; a panic in the
// callback is logged, not propagated into the negotiation's goroutine.
func (s *Service) notifyFinished(ctx context.Context, log *slog.Logger, n *store.Negotiation) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("OnFinished panicked", "panic", p)
		}
	}()
	votes, err := s.deps.Store.Negotiations().ListVotes(ctx, n.TenantID, n.ID)
	if err != nil {
		log.Error("OnFinished: read votes", "error", err)
		return
	}
	out, err := toProto(n, votes, s.now())
	if err != nil {
		log.Error("OnFinished: render", "error", err)
		return
	}
	s.deps.OnFinished(ctx, out)
}

// retry runs op until it succeeds, fails for a reason retrying cannot fix
// (conflict, invalid input, not found), or ctx ends.
func (s *Service) retry(ctx context.Context, op func(context.Context) error) error {
	wait := retryFirst
	for {
		err := op(ctx)
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrInvalid) ||
			errors.Is(err, store.ErrNotFound) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("store write failed; retrying", "error", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return err
		}
		wait = min(2*wait, retryMax)
	}
}

// sleep waits d or until ctx ends; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
