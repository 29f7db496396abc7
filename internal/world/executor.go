package world

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/decision-fabric/fabric/internal/actions"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/store"
)

// Change is what an executor is asked to do: the typed core of a manifest.
type Change struct {
	TenantID   string
	Action     string
	Target     string
	Regions    []string
	Parameters map[string]any
}

// Planner reads the world and computes what a change would do to it, changing nothing.
type Planner interface {
	Reader
	// Plan computes the state that applying c would produce, changing nothing: the dry
	// run. An error wrapping ErrRejected means the change is not valid for the current
	// state (the dry run fails); other errors are infrastructure failures.
	Plan(ctx context.Context, c Change) (post Snapshot, err error)
}

// Executor changes the world. Every method is safe to retry.
type Executor interface {
	Planner
	// Apply makes the change, provided the world still is in state pre (optimistic
	// concurrency: a concurrent change makes Apply fail with store.ErrConflict and
	// change nothing). It returns the post-state.
	Apply(ctx context.Context, c Change, pre Snapshot) (post Snapshot, err error)
	// Restore puts the world back exactly into state pre (P7): afterwards Read returns
	// byte-identical canonical JSON, hence the same SHA256.
	Restore(ctx context.Context, c Change, pre Snapshot) (Snapshot, error)
}

// TxApplier is implemented by executors whose world may live in the fabric's own store
// (the simulated world): the change can then be made inside the transaction that
// records it, so an enactment is never applied without its record, nor recorded
// without being applied, whatever crashes.
type TxApplier interface {
	// ApplyIn is Apply through tx, a transaction of the store the world lives in. ok
	// is false, and nothing is done, when c's world does not live in that store (a
	// tenant's webhook): the caller applies with Apply instead.
	ApplyIn(ctx context.Context, tx store.Store, c Change, pre Snapshot) (post Snapshot, ok bool, err error)
}

// ErrRejected marks a change that is invalid for the current state.
var ErrRejected = errors.New("world: change rejected")

// MaxReplicas bounds a simulated target (the action catalogue's bound).
const MaxReplicas = actions.MaxReplicas

// decoded is a snapshot document.
type decoded struct {
	TenantID string                    `json:"tenant_id"`
	Target   string                    `json:"target"`
	Regions  map[string]map[string]any `json:"regions"`
}

func decode(s Snapshot) (decoded, error) {
	var d decoded
	if err := json.Unmarshal(s.JSON, &d); err != nil {
		return d, fmt.Errorf("world: snapshot: %w", err)
	}
	return d, nil
}

func encode(d decoded) (Snapshot, error) {
	b, err := canonical.Marshal(d)
	if err != nil {
		return Snapshot{}, fmt.Errorf("world: %w", err)
	}
	return Snapshot{JSON: b, SHA256: canonical.SHA256Hex(b)}, nil
}

// decode decodes snap, a snapshot of c's target, taking the decoded document of the
// cached view when snap is byte for byte that view's snapshot (as the pre-state an
// Apply gets from a recent Read is). The result is shared: it must not be modified.
func (s *Simulated) decode(c Change, snap Snapshot) (decoded, error) {
	if v := s.views.lookup(c.TenantID, c.Target, normalise(c.Regions)); v != nil && bytes.Equal(v.snap.JSON, snap.JSON) {
		return v.decoded()
	}
	return decode(snap)
}

// Plan implements Executor for the simulated world.
func (s *Simulated) Plan(ctx context.Context, c Change) (Snapshot, error) {
	v, err := s.read(ctx, c.TenantID, c.Target, c.Regions)
	if err != nil {
		return Snapshot{}, err
	}
	d, err := v.decoded()
	if err != nil {
		return Snapshot{}, err
	}
	return plan(d, c)
}

// plan applies c to each region of pre and encodes the result. It does not modify
// pre, which may be shared (a view's decoded snapshot).
func plan(pre decoded, c Change) (Snapshot, error) {
	post := pre
	if pre.Regions != nil {
		post.Regions = make(map[string]map[string]any, len(pre.Regions))
	}
	for region, st := range pre.Regions {
		next, err := applyAction(st, c)
		if err != nil {
			return Snapshot{}, fmt.Errorf("%w: region %s: %w", ErrRejected, region, err)
		}
		post.Regions[region] = next
	}
	return encode(post)
}

// applyAction is the simulated semantics of each action on one region's state. It
// returns a new state and leaves st as it is. The parameters are read through the
// action catalogue (internal/actions), the schema submission validated them against:
// a value the schema refuses is refused here too, never clamped or ignored.
func applyAction(st map[string]any, c Change) (map[string]any, error) {
	p, err := actions.Parse(c.Action, c.Parameters)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(st))
	for k, v := range st {
		out[k] = v
	}
	replicas, _ := st["replicas"].(float64)
	switch c.Action {
	case actions.Scale:
		n, err := targetReplicas(replicas, p)
		if err != nil {
			return nil, err
		}
		out["replicas"] = n
	case actions.ReduceCost:
		out["replicas"] = math.Max(1, replicas+float64(*p.ReplicasDelta))
	case actions.Configure:
		cfg, _ := st["config"].(map[string]any)
		merged := map[string]any{}
		for k, v := range cfg {
			merged[k] = v
		}
		for k, v := range p.Config {
			merged[k] = v
		}
		out["config"] = merged
	default:
		return nil, fmt.Errorf("the simulated world does not implement action %q", c.Action)
	}
	return out, nil
}

// targetReplicas is the replica count a scale sets: the absolute count, or current
// plus the delta, which must stay in 0..MaxReplicas.
func targetReplicas(current float64, p actions.Params) (float64, error) {
	var n float64
	switch {
	case p.Replicas != nil:
		n = float64(*p.Replicas)
	case p.ReplicasDelta != nil:
		n = current + float64(*p.ReplicasDelta)
	default:
		return 0, errors.New("scale needs parameters.replicas or parameters.replicas_delta")
	}
	if n != math.Trunc(n) || n < 0 || n > MaxReplicas {
		return 0, fmt.Errorf("replicas %v out of range 0..%d", n, MaxReplicas)
	}
	return n, nil
}

// Apply implements Executor: writes each region's post-state if the world is still in
// pre, all in one store transaction.
func (s *Simulated) Apply(ctx context.Context, c Change, pre Snapshot) (Snapshot, error) {
	return s.apply(ctx, s.st, c, pre)
}

// ApplyIn implements TxApplier: Apply through tx, which must be a transaction of the
// store the simulated world was made with.
func (s *Simulated) ApplyIn(ctx context.Context, tx store.Store, c Change, pre Snapshot) (Snapshot, bool, error) {
	post, err := s.apply(ctx, tx, c, pre)
	return post, true, err
}

// apply plans c against pre and writes the post-state through st if the world is
// still in pre.
func (s *Simulated) apply(ctx context.Context, st store.Store, c Change, pre Snapshot) (Snapshot, error) {
	d, err := s.decode(c, pre)
	if err != nil {
		return Snapshot{}, err
	}
	post, err := plan(d, c)
	if err != nil {
		return Snapshot{}, err
	}
	return post, s.write(ctx, st, c, pre, post)
}

// Restore implements Executor: writes the pre-state back, whatever is there now.
func (s *Simulated) Restore(ctx context.Context, c Change, pre Snapshot) (Snapshot, error) {
	if err := s.write(ctx, s.st, c, Snapshot{}, pre); err != nil {
		return Snapshot{}, err
	}
	return s.Read(ctx, c.TenantID, c.Target, c.Regions)
}

// write stores want's per-region states; when expect is set, each region must still
// hold expect's state (compare-and-swap on the stored bytes).
func (s *Simulated) write(ctx context.Context, st store.Store, c Change, expect, want Snapshot) error {
	w, err := s.decode(c, want)
	if err != nil {
		return err
	}
	var e decoded
	if expect.JSON != nil {
		if e, err = s.decode(c, expect); err != nil {
			return err
		}
	}
	return st.InTx(ctx, func(tx store.Store) error {
		regions := normalise(c.Regions)
		rows, err := tx.WorldStates().GetRegions(ctx, c.TenantID, c.Target, regions)
		if err != nil {
			return fmt.Errorf("world: %s: %w", c.Target, err)
		}
		for i, region := range regions {
			cur := rows[i]
			if cur == nil {
				return fmt.Errorf("world: %s/%s: %w", region, c.Target, store.ErrNotFound)
			}
			if expect.JSON != nil {
				want, err := canonical.Marshal(e.Regions[region])
				if err != nil {
					return err
				}
				if string(want) != string(cur.State) {
					return fmt.Errorf("world: %s/%s changed since the pre-state snapshot: %w", region, c.Target, store.ErrConflict)
				}
			}
			next, err := canonical.Marshal(w.Regions[region])
			if err != nil {
				return err
			}
			if _, err := tx.WorldStates().Put(ctx, &store.WorldState{TenantID: c.TenantID, Region: region, Target: c.Target, State: next}, cur.Version); err != nil {
				return fmt.Errorf("world: write %s/%s: %w", region, c.Target, err)
			}
		}
		return nil
	})
}

// PlanFrom computes the state applying c to pre would produce, with the simulated
// semantics of each action, reading nothing: the dry run of c against a recorded
// state (a replay re-classifies a past decision against its pre-state snapshot). An
// error wrapping ErrRejected means c is not valid for pre.
func PlanFrom(pre Snapshot, c Change) (Snapshot, error) {
	d, err := decode(pre)
	if err != nil {
		return Snapshot{}, err
	}
	return plan(d, c)
}
