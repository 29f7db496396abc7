// Package auditlog is the fabric's tamper-evident audit log (DESIGN.md, "Trust").
//
// Each tenant has its own append-only log. An entry records one lifecycle event
// of a proposal (who, when, which trace, the SHA-256 of the event's canonical
// payload and a redacted summary of it, never the payload itself) and is
//
//   - chained: it carries the hash of the entry before it (prev_hash), and its
//     own entry_hash is the SHA-256 of its canonical JSON (EntryHash);
//   - a leaf of an RFC 6962 Merkle tree (leaf data = the 32-byte entry hash),
//     so any entry has an inclusion proof and any two tree sizes a
//     consistency proof;
//   - covered, in batches, by checkpoints (size, root, time) signed twice: a
//     C2SP signed note with Ed25519 and an ML-DSA-65 (FIPS 204) signature of
//     the same body. Signing cost is per checkpoint, not per entry: a
//     checkpoint is made once CheckpointEvery entries are unsigned, once
//     CheckpointInterval passed with entries unsigned, and on demand when a
//     proof is asked for an entry beyond the latest checkpoint.
//
// Rows are never updated or deleted (the store's schema refuses it) and
// Verify recomputes everything from the stored rows, naming the first entry
// that was altered, removed or reordered behind the schema's back.
//
// Appends are durable before they are acknowledged, and gapless: one
// goroutine (the sequencer) takes every pending Append, assigns positions,
// and writes the whole batch in one transaction (group commit), so one fsync
// serves many concurrent callers. Several processes may share a store: the
// store refuses an append that does not continue the stored log, and the
// sequencer then catches up and retries.
package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/decision-fabric/fabric/internal/store"
)

// Errors callers branch on with errors.Is.
var (
	// ErrInvalid: the event breaks a documented field rule; nothing was appended.
	ErrInvalid = errors.New("auditlog: invalid event")
	// ErrClosed: the log is closed.
	ErrClosed = errors.New("auditlog: closed")
	// ErrCorrupt: the stored log does not match its hashes or signed
	// checkpoints (tampering, or a bug). Run Verify for the first bad entry.
	ErrCorrupt = errors.New("auditlog: the stored audit log does not verify")
	// ErrNotFound: nothing is recorded (wraps store.ErrNotFound).
	ErrNotFound = fmt.Errorf("auditlog: %w", store.ErrNotFound)
	// ErrBehind: the store holds less than, or other than, a checkpoint this
	// log published (its checkpoint file): entries were cut or rewritten in
	// the database. The log refuses to start, and to sign, over it.
	ErrBehind = errors.New("auditlog: the store is behind a published checkpoint")
)

// Defaults of Options.
const (
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = 10 * time.Second
	DefaultMaxBatch           = 1000
)

// maxCommitAttempts bounds the retries of a batch that lost a race with
// another process appending to the same log.
const maxCommitAttempts = 8

// commitTimeout bounds one batch's transaction; it does not depend on the
// callers' contexts, so a caller going away never half-commits a batch.
const commitTimeout = 30 * time.Second

// Options configure a Log.
type Options struct {
	// Store keeps entries and checkpoints. Required.
	Store store.Store
	// Keys sign checkpoints. Required.
	Keys *Keys
	// CheckpointEvery: a checkpoint is made once this many entries of a
	// tenant are unsigned; DefaultCheckpointEvery when <= 0.
	CheckpointEvery int
	// CheckpointInterval: a tenant's unsigned entries are signed within about
	// this long; DefaultCheckpointInterval when <= 0.
	CheckpointInterval time.Duration
	// MaxBatch bounds the appends of one transaction; DefaultMaxBatch when <= 0.
	MaxBatch int
	// CheckpointFile, when set, is the append-only file every signed
	// checkpoint is published to (fsync'd) besides the store; see
	// ReadCheckpointFile. New refuses to start (ErrBehind) when the store is
	// shorter than, or differs from, the last checkpoint of a tenant in it.
	CheckpointFile string
	// Witness, when set, cosigns each checkpoint before it is stored and
	// published; a checkpoint it does not cosign (unreachable, or refused)
	// is stored without the cosignature and the failure is logged.
	Witness Cosigner
	// Logger; discards when nil. It never receives payloads or summaries.
	Logger *slog.Logger
	// Registerer receives the log's metrics; a private registry when nil.
	Registerer prometheus.Registerer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Log is the audit log. It is safe for concurrent use; Close stops it.
type Log struct {
	opts    Options
	st      store.Store
	keys    *Keys
	log     *slog.Logger
	metrics *metrics

	queue    chan []*request // a caller's events, appended together and in order
	stopping chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once

	cpFile *checkpointFile // nil without Options.CheckpointFile

	mu      sync.Mutex
	tenants map[string]*tenantLog

	// pubMu guards published. It is taken with a tenant's lock held (never
	// the other way round), unlike mu, which Verify holds while taking them.
	pubMu     sync.Mutex
	published map[string]*Checkpoint // latest published checkpoint per tenant
}

// Cosigner is a witness (see internal/witness): it cosigns a checkpoint only
// when it is consistent with the last one of the same log it cosigned.
type Cosigner interface {
	// Cosign returns c's note with the witness's cosignature line added.
	// proof returns the RFC 6962 consistency proof from the tree of the
	// first from entries to c's, for the witness's last cosigned size.
	Cosign(ctx context.Context, c *Checkpoint, proof func(from uint64) ([][]byte, error)) ([]byte, error)
}

// tenantLog is this process's view of one tenant's log: the Merkle tree of
// every entry it has seen and the latest checkpoint. mu serialises its use;
// the sequencer never holds two tenants' locks at once.
type tenantLog struct {
	name   string
	mu     sync.Mutex
	loaded bool
	tree   tree
	last   string      // entry hash of the last leaf ("" when empty)
	cp     *Checkpoint // latest verified checkpoint, or nil
}

type request struct {
	p    *prepared
	done chan result // buffered: the sequencer never blocks on a caller
}

type result struct {
	entry   *store.AuditEntry
	created bool
	err     error
}

// New returns a running log. Close it to stop its sequencer.
func New(opts Options) (*Log, error) {
	if opts.Store == nil {
		return nil, errors.New("auditlog: Options.Store is required")
	}
	if opts.Keys == nil {
		return nil, errors.New("auditlog: Options.Keys is required")
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	l := &Log{
		opts: opts, st: opts.Store, keys: opts.Keys, log: opts.Logger.With("component", "auditlog"), metrics: m,
		queue: make(chan []*request), stopping: make(chan struct{}), stopped: make(chan struct{}),
		tenants: map[string]*tenantLog{}, published: map[string]*Checkpoint{},
	}
	if opts.CheckpointFile != "" {
		if err := l.openPublished(); err != nil {
			return nil, err
		}
	}
	go l.run()
	return l, nil
}

// openPublished reads the checkpoint file and holds the store to the last
// checkpoint of each tenant in it: a store that is shorter, or has another
// root at that size, is ErrBehind. It then opens the file for appending.
func (l *Log) openPublished() error {
	cf, cps, err := openCheckpointFile(l.opts.CheckpointFile, l.keys.Verifier())
	if err != nil {
		return err
	}
	for _, c := range cps {
		name, _ := TenantOf(c.Origin)
		if p := l.published[name]; p == nil || c.Size >= p.Size {
			l.published[name] = c
		}
	}
	ctx, cancel := context.WithTimeout(store.WithCommitLabel(context.Background(), CommitLabel), commitTimeout)
	defer cancel()
	for name, p := range l.published {
		tl := l.tenant(name)
		tl.mu.Lock()
		err := l.sync(ctx, l.st, tl)
		if err == nil {
			err = l.consistentWithPublished(tl, tl.tree.size)
		}
		tl.mu.Unlock()
		if err != nil {
			cf.close()
			return fmt.Errorf("%w (checkpoint file %s, size %d)", err, l.opts.CheckpointFile, p.Size)
		}
	}
	l.cpFile = cf
	return nil
}

// consistentWithPublished checks that the first size entries tl holds extend
// the last checkpoint published for tl: at least as many, same root at its
// size. tl.mu must be held.
func (l *Log) consistentWithPublished(tl *tenantLog, size uint64) error {
	l.pubMu.Lock()
	p := l.published[tl.name]
	l.pubMu.Unlock()
	if p == nil {
		return nil
	}
	if size < p.Size {
		return fmt.Errorf("%w: tenant %q: checkpoint size %d > log size %d: entries %d..%d missing from the store; restore them (or the database) before the auditor signs again",
			ErrBehind, tl.name, p.Size, size, size, p.Size-1)
	}
	root, err := tl.tree.root(p.Size)
	if err != nil {
		return err
	}
	if string(root) != string(p.Root) {
		return fmt.Errorf("%w: tenant %q: the stored entries have another root at size %d than the published checkpoint: entries before %d were rewritten",
			ErrBehind, tl.name, p.Size, p.Size)
	}
	return nil
}

// Verifier returns the public keys that verify this log's checkpoints.
func (l *Log) Verifier() *Verifier { return l.keys.Verifier() }

// Close stops accepting appends, finishes the batch in flight, signs a last
// checkpoint of every log this process appended to, and returns. Idempotent.
func (l *Log) Close() error {
	l.stopOnce.Do(func() { close(l.stopping) })
	<-l.stopped
	if l.cpFile != nil {
		return l.cpFile.close()
	}
	return nil
}

// Append appends one event to its tenant's log and returns the stored entry
// once it is durable. With an IdempotencyKey already used in that log it
// appends nothing and returns the earlier entry with created=false. An
// invalid event is ErrInvalid. If ctx ends first the entry may still be
// appended (look it up by idempotency key to know).
func (l *Log) Append(ctx context.Context, e Event) (entry *store.AuditEntry, created bool, err error) {
	out, err := l.AppendAll(ctx, []Event{e})
	if err != nil {
		return nil, false, err
	}
	return out[0].Entry, out[0].Created, nil
}

// Appended is the outcome of one event of AppendAll.
type Appended struct {
	Entry   *store.AuditEntry
	Created bool
}

// AppendAll appends events in order, in the same commit, and returns once all are
// durable, with Append's rules for each. An invalid event fails the call before
// anything is appended; a failure while appending is the first error (events before
// it may be appended: retry with the same idempotency keys).
func (l *Log) AppendAll(ctx context.Context, events []Event) ([]Appended, error) {
	reqs := make([]*request, len(events))
	for i, e := range events {
		p, err := prepare(e)
		if err != nil {
			return nil, err
		}
		reqs[i] = &request{p: p, done: make(chan result, 1)}
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	select {
	case l.queue <- reqs:
	case <-l.stopping:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]Appended, len(reqs))
	for i, r := range reqs {
		select {
		case res := <-r.done:
			if res.err != nil {
				return nil, res.err
			}
			out[i] = Appended{Entry: res.entry, Created: res.created}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// run is the sequencer: the only goroutine that appends.
func (l *Log) run() {
	defer close(l.stopped)
	tick := time.NewTicker(max(l.opts.CheckpointInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-l.stopping:
			l.checkpointPending(true)
			return
		case reqs := <-l.queue:
			batch := reqs
		more:
			for len(batch) < l.opts.MaxBatch {
				select {
				case reqs := <-l.queue:
					batch = append(batch, reqs...)
				default:
					break more
				}
			}
			l.commit(batch)
		case <-tick.C:
			l.checkpointPending(false)
		}
	}
}

// tenant returns the state of a tenant's log, creating it (unloaded).
func (l *Log) tenant(name string) *tenantLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	tl := l.tenants[name]
	if tl == nil {
		tl = &tenantLog{name: name}
		l.tenants[name] = tl
	}
	return tl
}

// commit writes a batch, retrying when another process appended meanwhile,
// then answers every request and signs the logs that reached CheckpointEvery.
func (l *Log) commit(batch []*request) {
	ctx, cancel := context.WithTimeout(store.WithCommitLabel(context.Background(), CommitLabel), commitTimeout)
	defer cancel()
	start := time.Now()
	var names []string
	for _, r := range batch {
		if !slices.Contains(names, r.p.tenant) {
			names = append(names, r.p.tenant)
		}
	}
	slices.Sort(names)
	var results []result
	var entries []*store.AuditEntry
	var err error
	for attempt := 1; ; attempt++ {
		// Logs this process has not loaded yet are read before the
		// transaction (it may be long); after an unexpected conflict all are.
		if err = l.syncAll(ctx, names, attempt > 1); err == nil {
			results, entries, err = l.tryCommit(ctx, names, batch)
		}
		if !errors.Is(err, store.ErrConflict) || attempt == maxCommitAttempts {
			break
		}
		l.metrics.conflicts.Inc()
	}
	if err != nil {
		l.log.Error("audit append failed", "entries", len(batch), "error", err)
		for _, r := range batch {
			r.done <- result{err: fmt.Errorf("auditlog: append: %w", err)}
		}
		return
	}
	l.apply(entries)
	for i, r := range batch {
		r.done <- results[i]
	}
	l.metrics.appended.Add(float64(len(entries)))
	l.metrics.batch.Observe(float64(len(batch)))
	l.metrics.commit.Observe(time.Since(start).Seconds())
	for _, name := range names {
		tl := l.tenant(name)
		tl.mu.Lock()
		if due := tl.tree.size - tl.signedSize(); due >= uint64(l.opts.CheckpointEvery) {
			if _, err := l.checkpoint(ctx, tl); err != nil {
				l.log.Error("audit checkpoint failed", "tenant_id", name, "error", err)
			}
		}
		tl.mu.Unlock()
	}
}

// syncAll brings the named logs up to date with the store: those not loaded
// yet, or all of them when force.
func (l *Log) syncAll(ctx context.Context, names []string, force bool) error {
	for _, name := range names {
		tl := l.tenant(name)
		tl.mu.Lock()
		var err error
		if force || !tl.loaded {
			err = l.sync(ctx, l.st, tl)
		}
		tl.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// tryCommit appends the batch in one transaction: it locks the batch's logs
// (store Head), catches up with entries other processes appended, assigns
// positions and writes. names are the batch's tenants, sorted.
func (l *Log) tryCommit(ctx context.Context, names []string, batch []*request) ([]result, []*store.AuditEntry, error) {
	now := l.opts.Now()
	var results []result
	var entries []*store.AuditEntry
	err := l.st.InTx(ctx, func(tx store.Store) error {
		results, entries = make([]result, len(batch)), entries[:0]
		type head struct {
			size int64
			last string
		}
		// Lock each log of the batch (sorted: no deadlock with another
		// process) and catch up with what other writers appended.
		heads := map[string]*head{}
		for _, name := range names {
			h, err := tx.AuditLog().Head(ctx, name)
			if err != nil {
				return err
			}
			tl := l.tenant(name)
			tl.mu.Lock()
			if uint64(h.Size) != tl.tree.size || h.LastHash != tl.last {
				err = l.sync(ctx, tx, tl)
				if err == nil && (uint64(h.Size) != tl.tree.size || h.LastHash != tl.last) {
					err = fmt.Errorf("%w: tenant %q: the stored log ends at %d entries, this process holds %d", ErrCorrupt, name, h.Size, tl.tree.size)
				}
			}
			tl.mu.Unlock()
			if err != nil {
				return err
			}
			heads[name] = &head{size: h.Size, last: h.LastHash}
		}
		existing, err := replays(ctx, tx, names, batch)
		if err != nil {
			return err
		}
		byKey := map[[2]string]int{}
		for i, r := range batch {
			p := r.p
			if p.key != "" {
				k := [2]string{p.tenant, p.key}
				if j, ok := byKey[k]; ok {
					results[i] = result{entry: results[j].entry} // a repeat within the batch
					continue
				}
				byKey[k] = i
				if e := existing[k]; e != nil {
					results[i] = result{entry: e}
					continue
				}
			}
			h := heads[p.tenant]
			e, err := p.entry(h.size, h.last, now)
			if err != nil {
				return err
			}
			h.size, h.last = h.size+1, e.EntryHash
			results[i] = result{entry: e, created: true}
			entries = append(entries, e)
		}
		return tx.AuditLog().Append(ctx, entries)
	})
	return results, entries, err
}

// replays returns the entries already appended under the batch's idempotency
// keys, by (tenant, key): one lookup per tenant of the batch (names, sorted).
func replays(ctx context.Context, tx store.Store, names []string, batch []*request) (map[[2]string]*store.AuditEntry, error) {
	keys := make(map[string][]string, len(names))
	for _, r := range batch {
		if r.p.key != "" {
			keys[r.p.tenant] = append(keys[r.p.tenant], r.p.key)
		}
	}
	out := map[[2]string]*store.AuditEntry{}
	for _, name := range names {
		if len(keys[name]) == 0 {
			continue
		}
		found, err := tx.AuditLog().GetByIdempotencyKeys(ctx, name, keys[name])
		if err != nil {
			return nil, err
		}
		for k, e := range found {
			out[[2]string{name, k}] = e
		}
	}
	return out, nil
}

// apply adds committed entries to the in-memory trees (entries a concurrent
// sync already loaded are skipped).
func (l *Log) apply(entries []*store.AuditEntry) {
	for _, e := range entries {
		tl := l.tenant(e.TenantID)
		tl.mu.Lock()
		if uint64(e.Index) == tl.tree.size {
			h, _ := decodeHash(e.EntryHash)
			tl.tree.appendLeaf(leafHash(h))
			tl.last = e.EntryHash
		}
		tl.mu.Unlock()
	}
}

// signedSize is the size of the latest checkpoint (0 when none). tl.mu held.
func (tl *tenantLog) signedSize() uint64 {
	if tl.cp == nil {
		return 0
	}
	return tl.cp.Size
}

// sync loads the entries and the latest checkpoint other writers (or an
// earlier process) stored beyond what tl holds. tl.mu must be held. It checks
// the chain's links and that the checkpoint signs the root of the entries it
// covers; it trusts the stored entry hashes (Verify and Trail recompute them).
func (l *Log) sync(ctx context.Context, st store.Store, tl *tenantLog) error {
	al := st.AuditLog()
	for {
		page, err := al.List(ctx, tl.name, int64(tl.tree.size), store.MaxListLimit)
		if err != nil {
			return err
		}
		for _, e := range page {
			if uint64(e.Index) != tl.tree.size || e.PrevHash != tl.last {
				return fmt.Errorf("%w: tenant %q: entry %d does not continue entry %d", ErrCorrupt, tl.name, e.Index, int64(tl.tree.size)-1)
			}
			h, err := decodeHash(e.EntryHash)
			if err != nil {
				return fmt.Errorf("%w: tenant %q: entry %d: %w", ErrCorrupt, tl.name, e.Index, err)
			}
			tl.tree.appendLeaf(leafHash(h))
			tl.last = e.EntryHash
		}
		if len(page) < store.MaxListLimit {
			break
		}
	}
	tl.loaded = true
	rec, err := al.LatestCheckpoint(ctx, tl.name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if tl.cp != nil && uint64(rec.Size) <= tl.cp.Size {
		return nil
	}
	c, err := l.keys.Verifier().open(tl.name, rec)
	if err != nil {
		return fmt.Errorf("%w: tenant %q: checkpoint of size %d: %w", ErrCorrupt, tl.name, rec.Size, err)
	}
	if c.Size > tl.tree.size {
		return fmt.Errorf("%w: tenant %q: the checkpoint of size %d covers entries from %d that are not stored", ErrCorrupt, tl.name, c.Size, tl.tree.size)
	}
	root, err := tl.tree.root(c.Size)
	if err != nil {
		return err
	}
	if string(root) != string(c.Root) {
		return fmt.Errorf("%w: tenant %q: the entries do not have the root signed at size %d", ErrCorrupt, tl.name, c.Size)
	}
	tl.cp = c
	return nil
}

// checkpoint signs and stores a checkpoint of everything tl holds, unless the
// latest already covers it, and returns the latest. tl.mu must be held.
func (l *Log) checkpoint(ctx context.Context, tl *tenantLog) (*Checkpoint, error) {
	size := tl.tree.size
	if size == 0 {
		return nil, fmt.Errorf("%w: tenant %q has no audit entries", ErrNotFound, tl.name)
	}
	if tl.cp != nil && tl.cp.Size >= size {
		return tl.cp, nil
	}
	// Never sign over a store that lost or rewrote what was published.
	if err := l.consistentWithPublished(tl, size); err != nil {
		return nil, err
	}
	root, err := tl.tree.root(size)
	if err != nil {
		return nil, err
	}
	c, err := l.keys.sign(Origin(tl.name), size, root, l.opts.Now())
	if err != nil {
		return nil, err
	}
	if l.opts.Witness != nil {
		cosigned, err := l.opts.Witness.Cosign(ctx, c, func(from uint64) ([][]byte, error) { return tl.tree.consistency(from, size) })
		if err != nil {
			l.metrics.witnessFailures.Inc()
			l.log.Error("audit checkpoint not cosigned by the witness", "tenant_id", tl.name, "size", size, "error", err)
		} else {
			c.Note = cosigned
		}
	}
	_, err = l.st.AuditLog().PutCheckpoint(ctx, c.record(tl.name))
	if errors.Is(err, store.ErrConflict) {
		// Another process signed this size first: use the stored one.
		if err := l.sync(ctx, l.st, tl); err != nil {
			return nil, err
		}
		if tl.cp == nil || tl.cp.Size < size {
			return nil, fmt.Errorf("auditlog: tenant %q: checkpoint of size %d: %w", tl.name, size, store.ErrConflict)
		}
		return tl.cp, nil
	}
	if err != nil {
		return nil, err
	}
	tl.cp = c
	l.metrics.checkpoints.Inc()
	l.publish(tl.name, c)
	return c, nil
}

// publish appends c to the checkpoint file, if any. A failure is logged and
// counted: the checkpoint is stored, and the next one publishes the tree again.
func (l *Log) publish(tenant string, c *Checkpoint) {
	if l.cpFile == nil {
		return
	}
	if err := l.cpFile.append(c); err != nil {
		l.metrics.publishFailures.Inc()
		l.log.Error("audit checkpoint not published", "tenant_id", tenant, "size", c.Size, "error", err)
		return
	}
	l.pubMu.Lock()
	l.published[tenant] = c
	l.pubMu.Unlock()
}

// Published returns the latest checkpoint of a tenant's log this log
// published to its checkpoint file (or read from it at start), nil when none.
func (l *Log) Published(tenant string) *Checkpoint {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	return l.published[tenant]
}

// checkpointPending signs every loaded log with entries unsigned for at least
// CheckpointInterval (all of them when final).
func (l *Log) checkpointPending(final bool) {
	l.mu.Lock()
	logs := make([]*tenantLog, 0, len(l.tenants))
	for _, tl := range l.tenants {
		logs = append(logs, tl)
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(store.WithCommitLabel(context.Background(), CommitLabel), commitTimeout)
	defer cancel()
	now := l.opts.Now()
	for _, tl := range logs {
		tl.mu.Lock()
		pending := tl.loaded && tl.tree.size > tl.signedSize()
		stale := final || tl.cp == nil || now.Sub(tl.cp.Time) >= l.opts.CheckpointInterval
		if pending && stale {
			if _, err := l.checkpoint(ctx, tl); err != nil {
				l.log.Error("audit checkpoint failed", "tenant_id", tl.name, "error", err)
			}
		}
		tl.mu.Unlock()
	}
}

// Trail is a proposal's entries, each with its inclusion proof in one signed
// checkpoint.
type Trail struct {
	Entries []*store.AuditEntry
	// Proofs[i] is the RFC 6962 inclusion proof of Entries[i] (leaf
	// LeafHash(EntryHash), index Entries[i].Index) in Checkpoint's tree.
	Proofs     [][][]byte
	Checkpoint *Checkpoint
}

// maxTrail bounds the entries of one trail.
const maxTrail = store.MaxListLimit

// Trail returns every entry recorded for a tenant's proposal, in log order
// (at most 1000), proven against the latest checkpoint, which is made now if
// it does not cover them yet. Nothing recorded is ErrNotFound. Before
// answering it recomputes each entry's hash and checks it against the tree:
// a stored row that was altered is ErrCorrupt, never served as genuine.
func (l *Log) Trail(ctx context.Context, tenant, proposalID string) (*Trail, error) {
	entries, err := l.st.AuditLog().ListByProposal(ctx, tenant, proposalID, maxTrail)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no audit entries for proposal %s", ErrNotFound, proposalID)
	}
	for _, e := range entries {
		h, err := EntryHash(e)
		if err != nil {
			return nil, err
		}
		if h != e.EntryHash {
			return nil, fmt.Errorf("%w: tenant %q: entry %d does not match its hash", ErrCorrupt, tenant, e.Index)
		}
	}
	tl := l.tenant(tenant)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if err := l.sync(ctx, l.st, tl); err != nil {
		return nil, err
	}
	last := uint64(entries[len(entries)-1].Index)
	if last >= tl.tree.size {
		return nil, fmt.Errorf("%w: tenant %q: entry %d is not in the log's chain", ErrCorrupt, tenant, last)
	}
	cp := tl.cp
	if cp == nil || cp.Size <= last {
		if cp, err = l.checkpoint(ctx, tl); err != nil {
			return nil, err
		}
	}
	t := &Trail{Entries: entries, Proofs: make([][][]byte, len(entries)), Checkpoint: cp}
	for i, e := range entries {
		h, _ := decodeHash(e.EntryHash)
		if tl.tree.leaf(uint64(e.Index)) != leafHash(h) {
			return nil, fmt.Errorf("%w: tenant %q: entry %d is not the leaf the tree holds", ErrCorrupt, tenant, e.Index)
		}
		if t.Proofs[i], err = tl.tree.inclusion(uint64(e.Index), cp.Size); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Checkpoint returns the latest checkpoint of a tenant's log, first signing
// one if entries are unsigned. A log without entries is ErrNotFound.
func (l *Log) Checkpoint(ctx context.Context, tenant string) (*Checkpoint, error) {
	tl := l.tenant(tenant)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if err := l.sync(ctx, l.st, tl); err != nil {
		return nil, err
	}
	return l.checkpoint(ctx, tl)
}

// ConsistencyProof returns the RFC 6962 consistency proof from the tree of a
// tenant's first size1 entries to that of its first size2 (size1 <= size2 <=
// entries). Verify it with proof.VerifyConsistency against two checkpoints.
func (l *Log) ConsistencyProof(ctx context.Context, tenant string, size1, size2 uint64) ([][]byte, error) {
	tl := l.tenant(tenant)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if err := l.sync(ctx, l.st, tl); err != nil {
		return nil, err
	}
	if size1 > size2 || size2 > tl.tree.size {
		return nil, fmt.Errorf("%w: sizes %d and %d: want size1 <= size2 <= %d", ErrInvalid, size1, size2, tl.tree.size)
	}
	return tl.tree.consistency(size1, size2)
}

// CommitLabel names the audit log's own commits for store observers
// (store.WithCommitLabel): they are off every decision's critical path.
const CommitLabel = "auditor"
