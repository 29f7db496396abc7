package auditlog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"

	"github.com/decision-fabric/fabric/internal/store"
)

// Kinds of Problem.
const (
	// ProblemAltered: the entry's fields no longer hash to its entry_hash.
	ProblemAltered = "altered"
	// ProblemMissing: the entry was removed (a gap, renumbered later entries,
	// or a checkpoint covering more entries than are stored).
	ProblemMissing = "missing"
	// ProblemReordered: the position holds the entry appended at another one.
	ProblemReordered = "reordered"
	// ProblemRehashed: the entry was altered and its hash recomputed; the next
	// entry's prev_hash gives it away.
	ProblemRehashed = "rehashed"
	// ProblemRewritten: entries were altered and the chain rebuilt after them;
	// only the signed root tells. Index is the first entry the failing
	// checkpoint covers that the checkpoint before it does not.
	ProblemRewritten = "rewritten"
	// ProblemCheckpoint: a stored checkpoint does not verify (signature,
	// origin, or stored fields differ from the signed ones). Index is -1.
	ProblemCheckpoint = "checkpoint"
)

// Problem is something Verify found.
type Problem struct {
	// Index is the first entry concerned: the first that was altered, removed
	// or reordered (-1 for a checkpoint problem).
	Index  int64
	Kind   string
	Detail string
}

// TenantReport is the verification of one tenant's log.
type TenantReport struct {
	TenantID    string
	Entries     int64 // entries verified before the first problem (all when intact)
	Checkpoints int   // checkpoints whose signatures verified
	// Problem is the first problem with the entries, in log order; nil when
	// every entry verified.
	Problem *Problem
	// CheckpointProblems lists stored checkpoints that do not verify.
	CheckpointProblems []Problem
}

// OK reports whether the tenant's log verified.
func (r *TenantReport) OK() bool { return r.Problem == nil && len(r.CheckpointProblems) == 0 }

// Report is the result of Verify.
type Report struct {
	Tenants []*TenantReport
}

// OK reports whether every log verified.
func (r *Report) OK() bool {
	for _, t := range r.Tenants {
		if !t.OK() {
			return false
		}
	}
	return true
}

// TamperError names the first problem of the first tenant whose log did not
// verify. It wraps ErrCorrupt.
type TamperError struct {
	TenantID string
	Problem  Problem
}

func (e *TamperError) Error() string {
	if e.Problem.Index < 0 {
		return fmt.Sprintf("auditlog: tenant %q: %s", e.TenantID, e.Problem.Detail)
	}
	return fmt.Sprintf("auditlog: tenant %q: entry %d %s: %s", e.TenantID, e.Problem.Index, e.Problem.Kind, e.Problem.Detail)
}

func (e *TamperError) Unwrap() error { return ErrCorrupt }

// Err is nil when every log verified, else a *TamperError for the first
// tenant that did not (its entry problem first, then its checkpoint problems).
func (r *Report) Err() error {
	for _, t := range r.Tenants {
		if t.Problem != nil {
			return &TamperError{TenantID: t.TenantID, Problem: *t.Problem}
		}
		if len(t.CheckpointProblems) > 0 {
			return &TamperError{TenantID: t.TenantID, Problem: t.CheckpointProblems[0]}
		}
	}
	return nil
}

// Verify recomputes a tenant's log (every tenant's when tenant is "") from
// the store with VerifyStore, and also reports entries this process appended
// or saw that are no longer stored. Tampering is reported in the Report, not
// as an error; the error is for a store that cannot be read.
func (l *Log) Verify(ctx context.Context, tenant string) (*Report, error) {
	known := map[string]uint64{}
	l.mu.Lock()
	for name, tl := range l.tenants {
		if tenant == "" || name == tenant {
			tl.mu.Lock()
			known[name] = tl.tree.size
			tl.mu.Unlock()
		}
	}
	l.mu.Unlock()
	rep, err := verifyStore(ctx, l.st, l.keys.Verifier(), tenant, known)
	if err == nil && !rep.OK() {
		l.metrics.tampered.Inc()
		l.log.Error("audit log verification failed", "error", rep.Err())
	}
	return rep, err
}

// VerifyStore verifies a tenant's log (every tenant's when tenant is "") as
// stored, with only the public keys: it recomputes every entry hash and
// chain link in index order, the Merkle root at the size of each stored
// checkpoint, and both signatures of every checkpoint. For each tenant it
// names the first entry that was altered, removed or reordered.
func VerifyStore(ctx context.Context, st store.Store, v *Verifier, tenant string) (*Report, error) {
	return verifyStore(ctx, st, v, tenant, nil)
}

func verifyStore(ctx context.Context, st store.Store, v *Verifier, tenant string, known map[string]uint64) (*Report, error) {
	names := []string{tenant}
	if tenant == "" {
		names = names[:0]
		for after := ""; ; {
			page, err := st.AuditLog().ListTenants(ctx, after, store.MaxListLimit)
			if err != nil {
				return nil, err
			}
			names = append(names, page...)
			if len(page) < store.MaxListLimit {
				break
			}
			after = page[len(page)-1]
		}
		for name := range known {
			if !slices.Contains(names, name) {
				names = append(names, name) // every row of it is gone
			}
		}
		slices.Sort(names)
	}
	rep := &Report{}
	for _, name := range names {
		tr, err := verifyTenant(ctx, st, v, name, known[name])
		if err != nil {
			return nil, err
		}
		rep.Tenants = append(rep.Tenants, tr)
	}
	return rep, nil
}

func verifyTenant(ctx context.Context, st store.Store, v *Verifier, tenant string, known uint64) (*TenantReport, error) {
	al := st.AuditLog()
	tr := &TenantReport{TenantID: tenant}
	recs, err := al.ListCheckpoints(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var cps []*Checkpoint
	for _, r := range recs {
		c, err := v.open(tenant, r)
		if err != nil {
			tr.CheckpointProblems = append(tr.CheckpointProblems, Problem{Index: -1, Kind: ProblemCheckpoint,
				Detail: fmt.Sprintf("the checkpoint stored for size %d does not verify: %v", r.Size, err)})
			continue
		}
		cps = append(cps, c)
	}
	tr.Checkpoints = len(cps)

	rf := compact.RangeFactory{Hash: hasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	var next int // cps[next] is the next checkpoint to reach
	var signed uint64
	var i int64
	prev := ""
	for tr.Problem == nil {
		page, err := al.List(ctx, tenant, i, store.MaxListLimit)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			if e.Index != i {
				tr.Problem = &Problem{Index: i, Kind: ProblemMissing,
					Detail: fmt.Sprintf("no entry is stored at this index; the next stored entry is %d", e.Index)}
				break
			}
			h, err := EntryHash(e)
			if err != nil {
				return nil, err
			}
			if h != e.EntryHash {
				tr.Problem, err = classify(ctx, al, e)
				if err != nil {
					return nil, err
				}
				break
			}
			if e.PrevHash != prev {
				tr.Problem = &Problem{Index: i - 1, Kind: ProblemRehashed,
					Detail: fmt.Sprintf("entry %d's prev_hash is not this entry's hash: this entry was altered and its hash recomputed (or the link itself was)", i)}
				if i == 0 {
					tr.Problem = &Problem{Index: 0, Kind: ProblemAltered, Detail: "the first entry has a prev_hash"}
				}
				break
			}
			leaf, _ := decodeHash(e.EntryHash)
			lh := leafHash(leaf)
			if err := cr.Append(lh[:], nil); err != nil {
				return nil, err
			}
			prev = e.EntryHash
			i++
			for ; next < len(cps) && cps[next].Size == uint64(i); next++ {
				root, err := cr.GetRootHash(nil)
				if err != nil {
					return nil, err
				}
				if string(root) != string(cps[next].Root) {
					tr.Problem = &Problem{Index: int64(signed), Kind: ProblemRewritten,
						Detail: fmt.Sprintf("entries %d to %d no longer have the root signed at size %d: one of them was altered and the chain rebuilt after it", signed, i-1, i)}
					break
				}
				signed = uint64(i)
			}
			if tr.Problem != nil {
				break
			}
		}
		if len(page) < store.MaxListLimit {
			break
		}
	}
	tr.Entries = i
	if tr.Problem != nil {
		tr.Entries = tr.Problem.Index
		return tr, nil
	}
	if last := len(cps) - 1; last >= 0 && cps[last].Size > uint64(i) {
		tr.Problem = &Problem{Index: i, Kind: ProblemMissing,
			Detail: fmt.Sprintf("the log ends at %d entries but a checkpoint signs %d", i, cps[last].Size)}
	} else if known > uint64(i) {
		tr.Problem = &Problem{Index: i, Kind: ProblemMissing,
			Detail: fmt.Sprintf("the log ends at %d entries but this process appended or read %d", i, known)}
	}
	return tr, nil
}

// classify explains an entry whose fields do not hash to its stored hash: if
// it is intact but at another position it was moved (reordered) or the
// entries before it were removed and the rest renumbered (missing);
// otherwise its content was altered.
func classify(ctx context.Context, al store.AuditLogStore, e *store.AuditEntry) (*Problem, error) {
	candidates := []int64{}
	predMissing := false // the entry it chains to is gone
	if e.PrevHash == "" {
		candidates = append(candidates, 0)
	} else {
		pred, err := al.FindByHash(ctx, e.TenantID, e.PrevHash)
		switch {
		case err == nil:
			candidates = append(candidates, pred.Index+1)
		case errors.Is(err, store.ErrNotFound):
			predMissing = true
		default:
			return nil, err
		}
	}
	for d := int64(1); d <= 8; d++ {
		candidates = append(candidates, e.Index+d)
	}
	for _, orig := range candidates {
		if orig == e.Index {
			continue
		}
		moved := *e
		moved.Index = orig
		if h, err := EntryHash(&moved); err == nil && h == e.EntryHash {
			if orig > e.Index && predMissing {
				return &Problem{Index: e.Index, Kind: ProblemMissing,
					Detail: fmt.Sprintf("entries from %d were removed and the entry appended at %d renumbered to take their place", e.Index, orig)}, nil
			}
			return &Problem{Index: e.Index, Kind: ProblemReordered,
				Detail: fmt.Sprintf("this position holds the entry appended at index %d", orig)}, nil
		}
	}
	return &Problem{Index: e.Index, Kind: ProblemAltered, Detail: "its fields no longer hash to its entry_hash"}, nil
}
