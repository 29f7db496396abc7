package store

import (
	"context"
	"sync"
)

// Commit observation: each durable commit of a root store — one InTx, or one write
// outside a transaction — is reported to the observers registered with Observe, with
// the writer's context. It is how a test counts the commits on a decision's critical
// path (issue 10: at most 6) and how a test proves a read path writes nothing. On
// SQLite, writes that share one group commit are each reported: they are each a commit
// their caller waited for.

type observers struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(ctx context.Context)
}

func (o *observers) notify(ctx context.Context) {
	if o == nil {
		return
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	for _, fn := range o.fns {
		fn(ctx)
	}
}

// Observe calls fn after every durable commit of st (a Store returned by Open) until
// stop is called. fn runs on the committing goroutine: return promptly. A Store that
// cannot be observed (a wrapper of another kind) is reported with ok false.
func Observe(st Store, fn func(ctx context.Context)) (stop func(), ok bool) {
	s, isSQL := st.(*sqlStore)
	if !isSQL || s.obs == nil {
		return func() {}, false
	}
	s.obs.mu.Lock()
	defer s.obs.mu.Unlock()
	if s.obs.fns == nil {
		s.obs.fns = map[int]func(context.Context){}
	}
	id := s.obs.next
	s.obs.next++
	s.obs.fns[id] = fn
	return func() {
		s.obs.mu.Lock()
		delete(s.obs.fns, id)
		s.obs.mu.Unlock()
	}, true
}

type commitLabelKey struct{}

// WithCommitLabel names the writer of the commits made with ctx (e.g. "audit-relay"),
// for observers: background work off a decision's critical path labels itself so
// that a count of the critical path can leave it out.
func WithCommitLabel(ctx context.Context, label string) context.Context {
	return context.WithValue(ctx, commitLabelKey{}, label)
}

// CommitLabel is the label WithCommitLabel put on ctx, or "".
func CommitLabel(ctx context.Context) string {
	l, _ := ctx.Value(commitLabelKey{}).(string)
	return l
}
