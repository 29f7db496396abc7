package auditlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

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
	Checkpoints int   // stored checkpoints whose signatures verified
	// Covered is how many entries the last checkpoint that counts covers
	// (signed, cosigned when witnesses are required, and matching the log).
	Covered int64
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

// Defaults of VerifyOptions: the tail of entries a verifier accepts without a
// signed checkpoint. The auditor signs once DefaultCheckpointEvery entries are
// unsigned (after a batch of at most DefaultMaxBatch) and within about
// 1.25 × DefaultCheckpointInterval otherwise, and signs everything when it
// stops, so a healthy log's unsigned tail stays under both bounds.
const (
	DefaultMaxUnsigned    = DefaultCheckpointEvery + DefaultMaxBatch
	DefaultMaxUnsignedAge = 6 * DefaultCheckpointInterval
)

// ProblemUnsigned: entries beyond the last signed checkpoint (or, with
// witnesses required, the last cosigned one) exceed the tail bound of
// VerifyOptions: checkpoints after them were removed, or they were appended
// behind the auditor's back. Index is the first entry not covered.
const ProblemUnsigned = "unsigned"

// VerifyOptions tune VerifyStoreWith.
type VerifyOptions struct {
	// Tenant limits verification to one tenant's log; "" verifies every log
	// (those with stored rows and those named by Published checkpoints).
	Tenant string
	// MaxUnsigned is how many entries may follow the last checkpoint that
	// covers them: DefaultMaxUnsigned when 0, none when negative.
	MaxUnsigned int64
	// MaxUnsignedAge is how long before Now the first entry not covered by a
	// checkpoint may have been appended: DefaultMaxUnsignedAge when 0, no
	// age limit when negative (MaxUnsigned still applies).
	MaxUnsignedAge time.Duration
	// Published are checkpoints obtained outside the store (the auditor's
	// checkpoint file, a checkpoint saved earlier, GET /audit/checkpoint).
	// Each must verify with the log's keys; the stored log must be at least
	// as long as each and have its root at its size: a log cut below a
	// published checkpoint, or rewritten under it, does not verify even when
	// the store's own checkpoints were removed with the entries.
	Published []*Checkpoint
	// Witnesses, when given, must each have cosigned a checkpoint for it to
	// count as covering entries (the tail bound then runs from the last
	// cosigned checkpoint).
	Witnesses []note.Verifier
	// Now is the verifier's clock for MaxUnsignedAge; time.Now when nil.
	Now func() time.Time
}

func (o *VerifyOptions) defaults() {
	if o.MaxUnsigned == 0 {
		o.MaxUnsigned = DefaultMaxUnsigned
	}
	if o.MaxUnsignedAge == 0 {
		o.MaxUnsignedAge = DefaultMaxUnsignedAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Verify recomputes a tenant's log (every tenant's when tenant is "") from
// the store with VerifyStore, and also reports entries this process appended
// or saw that are no longer stored, and checkpoints it published (its
// checkpoint file) that the store no longer matches. Tampering is reported
// in the Report, not as an error; the error is for a store that cannot be read.
func (l *Log) Verify(ctx context.Context, tenant string) (*Report, error) {
	known := map[string]uint64{}
	var published []*Checkpoint
	l.mu.Lock()
	for name, tl := range l.tenants {
		if tenant == "" || name == tenant {
			tl.mu.Lock()
			known[name] = tl.tree.size
			tl.mu.Unlock()
		}
	}
	l.mu.Unlock()
	l.pubMu.Lock()
	for name, c := range l.published {
		if tenant == "" || name == tenant {
			published = append(published, c)
		}
	}
	l.pubMu.Unlock()
	rep, err := verifyStore(ctx, l.st, l.keys.Verifier(), VerifyOptions{Tenant: tenant, Published: published, Now: l.opts.Now}, known)
	if err == nil && !rep.OK() {
		l.metrics.tampered.Inc()
		l.log.Error("audit log verification failed", "error", rep.Err())
	}
	return rep, err
}

// VerifyStore is VerifyStoreWith with the default options for one tenant's
// log (every tenant's when tenant is "").
func VerifyStore(ctx context.Context, st store.Store, v *Verifier, tenant string) (*Report, error) {
	return verifyStore(ctx, st, v, VerifyOptions{Tenant: tenant}, nil)
}

// VerifyStoreWith verifies logs as stored, with only the public keys: it
// recomputes every entry hash and chain link in index order, the Merkle root
// at the size of each stored and each published checkpoint, and both
// signatures of every checkpoint; it requires every entry beyond a bounded
// tail (MaxUnsigned, MaxUnsignedAge) to be covered by a signed checkpoint,
// and the log to reach every checkpoint's size. For each tenant it names the
// first entry that was altered, removed, reordered or left unsigned.
func VerifyStoreWith(ctx context.Context, st store.Store, v *Verifier, opts VerifyOptions) (*Report, error) {
	return verifyStore(ctx, st, v, opts, nil)
}

func verifyStore(ctx context.Context, st store.Store, v *Verifier, opts VerifyOptions, known map[string]uint64) (*Report, error) {
	opts.defaults()
	tenant := opts.Tenant
	published := map[string][]*Checkpoint{}
	var badPublished []Problem
	for _, c := range opts.Published {
		name, ok := TenantOf(c.Origin)
		if !ok {
			return nil, fmt.Errorf("%w: origin %q is not a tenant's log", ErrMalformedCheckpoint, c.Origin)
		}
		if tenant != "" && name != tenant {
			continue
		}
		if _, err := v.Verify(c.Note, c.MLDSASignature); err != nil {
			badPublished = append(badPublished, Problem{Index: -1, Kind: ProblemCheckpoint,
				Detail: fmt.Sprintf("tenant %q: the published checkpoint of size %d does not verify: %v", name, c.Size, err)})
			continue
		}
		published[name] = append(published[name], c)
	}
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
		for name := range published {
			if !slices.Contains(names, name) {
				names = append(names, name) // every row of it is gone
			}
		}
		slices.Sort(names)
	}
	rep := &Report{}
	for _, name := range names {
		tr, err := verifyTenant(ctx, st, v, &opts, name, known[name], published[name])
		if err != nil {
			return nil, err
		}
		rep.Tenants = append(rep.Tenants, tr)
	}
	if len(badPublished) > 0 {
		if len(rep.Tenants) == 0 {
			rep.Tenants = append(rep.Tenants, &TenantReport{TenantID: tenant})
		}
		rep.Tenants[0].CheckpointProblems = append(rep.Tenants[0].CheckpointProblems, badPublished...)
	}
	return rep, nil
}

// checkpointRef is a checkpoint verifyTenant holds the log to.
type checkpointRef struct {
	*Checkpoint
	published bool // from outside the store
	cosigned  bool // by every required witness
}

func (c checkpointRef) what() string {
	if c.published {
		return "the published checkpoint of size " + strconv.FormatUint(c.Size, 10)
	}
	return "the checkpoint stored for size " + strconv.FormatUint(c.Size, 10)
}

func verifyTenant(ctx context.Context, st store.Store, v *Verifier, opts *VerifyOptions, tenant string, known uint64, published []*Checkpoint) (*TenantReport, error) {
	al := st.AuditLog()
	tr := &TenantReport{TenantID: tenant}
	recs, err := al.ListCheckpoints(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var cps []checkpointRef
	for _, r := range recs {
		c, err := v.open(tenant, r)
		if err != nil {
			tr.CheckpointProblems = append(tr.CheckpointProblems, Problem{Index: -1, Kind: ProblemCheckpoint,
				Detail: fmt.Sprintf("the checkpoint stored for size %d does not verify: %v", r.Size, err)})
			continue
		}
		cps = append(cps, checkpointRef{Checkpoint: c})
	}
	tr.Checkpoints = len(cps)
	for _, c := range published {
		// Every checkpoint the auditor published was stored first.
		if !slices.ContainsFunc(recs, func(r *store.AuditCheckpoint) bool { return uint64(r.Size) == c.Size }) {
			tr.CheckpointProblems = append(tr.CheckpointProblems, Problem{Index: -1, Kind: ProblemCheckpoint,
				Detail: fmt.Sprintf("the published checkpoint of size %d is not stored: stored checkpoints were deleted", c.Size)})
		}
		cps = append(cps, checkpointRef{Checkpoint: c, published: true})
	}
	slices.SortStableFunc(cps, func(a, b checkpointRef) int { return cmp.Compare(a.Size, b.Size) })
	for i := range cps {
		cps[i].cosigned = true
		for _, w := range opts.Witnesses {
			if VerifyCosignature(cps[i].Checkpoint, w) != nil {
				cps[i].cosigned = false
			}
		}
	}

	rf := compact.RangeFactory{Hash: hasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	var next int            // cps[next] is the next checkpoint to reach
	var signed uint64       // entries under the last checkpoint reached
	var covered uint64      // entries under the last checkpoint reached that counts (cosigned)
	var tailStart time.Time // when the entry at index covered was appended
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
			if uint64(i) == covered {
				tailStart = e.CreatedAt
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
						Detail: fmt.Sprintf("entries %d to %d no longer have the root of %s: one of them was altered and the chain rebuilt after it", signed, i-1, cps[next].what())}
					break
				}
				signed = uint64(i)
				if cps[next].cosigned {
					covered = uint64(i)
				}
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
	tr.Covered = int64(covered)
	if last := len(cps) - 1; last >= 0 && cps[last].Size > uint64(i) {
		tr.Problem = &Problem{Index: i, Kind: ProblemMissing,
			Detail: fmt.Sprintf("checkpoint size %d > log size %d: entries %d..%d missing (%s signs them)", cps[last].Size, i, i, cps[last].Size-1, cps[last].what())}
	} else if known > uint64(i) {
		tr.Problem = &Problem{Index: i, Kind: ProblemMissing,
			Detail: fmt.Sprintf("the log ends at %d entries but this process appended or read %d", i, known)}
	} else if p := opts.unsigned(uint64(i), covered, tailStart, len(cps) == 0); p != nil {
		tr.Problem = p
	}
	return tr, nil
}

// unsigned reports entries covered..size-1 when they exceed the tail bound.
func (o *VerifyOptions) unsigned(size, covered uint64, tailStart time.Time, none bool) *Problem {
	if size <= covered {
		return nil
	}
	n := size - covered
	age := o.Now().Sub(tailStart)
	tooMany := n > uint64(max(o.MaxUnsigned, 0))
	tooOld := o.MaxUnsignedAge > 0 && age > o.MaxUnsignedAge
	if !tooMany && !tooOld {
		return nil
	}
	by := "any signed checkpoint"
	if len(o.Witnesses) > 0 {
		names := make([]string, len(o.Witnesses))
		for i, w := range o.Witnesses {
			names[i] = w.Name()
		}
		by = "any checkpoint cosigned by " + strings.Join(names, " and ")
	}
	detail := fmt.Sprintf("entries %d..%d are not covered by %s", covered, size-1, by)
	if none {
		detail = "no signed checkpoint: " + detail
	}
	bound := fmt.Sprintf("%d entries", max(o.MaxUnsigned, 0))
	if o.MaxUnsignedAge > 0 {
		bound += fmt.Sprintf(", none older than %s", o.MaxUnsignedAge)
	}
	detail += fmt.Sprintf(" (%d entries, the first appended %s before verification; the unsigned tail allowed is %s)",
		n, age.Round(time.Second), bound)
	return &Problem{Index: int64(covered), Kind: ProblemUnsigned, Detail: detail}
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
