// decisions.go holds ListDecisionRecords: decision records with the inputs they were
// decided on (the proposal and its stored pre-state), by id or creation window, for the
// sim-canary's replays. It only reads.

package coordinator

import (
	"context"
	"errors"

	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/store"
)

// Bounds of ListDecisionRecords.
const (
	maxDecisionRecordIDs   = 200
	maxDecisionRecordLimit = 200
)

// validateListDecisionRecords checks a ListDecisionRecordsRequest's shape.
func validateListDecisionRecords(req any) error {
	r := req.(*coordinatorv1.ListDecisionRecordsRequest)
	window := r.GetFrom() != nil || r.GetTo() != nil
	switch {
	case len(r.GetIds()) == 0 && !window:
		return invalid("name the decisions: ids, or from and to")
	case len(r.GetIds()) > 0 && window:
		return invalid("ids and from/to: give one or the other")
	case len(r.GetIds()) > maxDecisionRecordIDs:
		return invalid("ids: %d given, at most %d", len(r.GetIds()), maxDecisionRecordIDs)
	case r.GetLimit() < 0 || r.GetLimit() > maxDecisionRecordLimit:
		return invalid("limit %d: want 0-%d", r.GetLimit(), maxDecisionRecordLimit)
	}
	for i, id := range r.GetIds() {
		if err := validateID(id); err != nil {
			return invalid("ids[%d]: %s", i, status.Convert(err).Message())
		}
	}
	if window {
		if r.GetFrom() == nil || r.GetTo() == nil {
			return invalid("from and to: both are required for a window")
		}
		if err := r.GetFrom().CheckValid(); err != nil {
			return invalid("from: %v", err)
		}
		if err := r.GetTo().CheckValid(); err != nil {
			return invalid("to: %v", err)
		}
		if !r.GetTo().AsTime().After(r.GetFrom().AsTime()) {
			return invalid("to must be after from")
		}
	}
	return nil
}

// ListDecisionRecords implements the RPC for the caller's tenant.
func (s *Service) ListDecisionRecords(ctx context.Context, req *coordinatorv1.ListDecisionRecordsRequest) (*coordinatorv1.ListDecisionRecordsResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	resp := &coordinatorv1.ListDecisionRecordsResponse{}
	var ps []*store.Proposal
	if ids := req.GetIds(); len(ids) > 0 {
		for _, id := range ids {
			p, err := s.deps.Store.Proposals().Get(ctx, tenant, id)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					resp.NotFound = append(resp.NotFound, id)
					continue
				}
				return nil, storeError(err)
			}
			ps = append(ps, p)
		}
	} else {
		limit := int(req.GetLimit())
		if limit == 0 {
			limit = maxDecisionRecordLimit
		}
		// One more than asked says whether the window holds more.
		ps, err = s.deps.Store.Proposals().ListCreated(ctx, tenant, req.GetFrom().AsTime(), req.GetTo().AsTime(), limit+1)
		if err != nil {
			return nil, storeError(err)
		}
		if len(ps) > limit {
			ps, resp.Truncated = ps[:limit], true
		}
	}
	for _, p := range ps {
		out, err := toProto(p)
		if err != nil {
			return nil, err
		}
		rec := &coordinatorv1.DecisionRecord{Proposal: out}
		snaps, err := s.deps.Store.Snapshots().List(ctx, tenant, p.ID)
		if err != nil {
			return nil, storeError(err)
		}
		for _, sn := range snaps {
			if sn.Kind == "pre" {
				rec.PreState, rec.PreStateSha256 = sn.State, sn.SHA256
			}
		}
		resp.Records = append(resp.Records, rec)
	}
	return resp, nil
}
