package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"github.com/decision-fabric/fabric/internal/config"
)

// maxTenants bounds the tenants whose quota state is kept; the least recently seen is
// forgotten first (it starts again with a full bucket).
const maxTenants = 10000

// Quota keeps the tenants' quotas of one service: a token bucket (rate, burst) and a
// cap on requests running or queued. LocalQuota keeps them in this process (each
// replica its own); RedisQuota shares them between the replicas of a service.
type Quota interface {
	// Admit takes one request of tenant's quota at now, or says when to retry (busy
	// is the Retry-After for the in-flight cap) with a *quotaError. done gives the
	// in-flight place back (calling it again does nothing).
	Admit(ctx context.Context, tenant string, now time.Time, busy time.Duration) (done func(), err error)
	// Rate takes one token of tenant's bucket at now.
	Rate(ctx context.Context, tenant string, now time.Time) error
	// Health says why the quota is degraded (nil when it is not).
	Health() []string
	// Component is the name and status ("ok", "degraded") of the quota's shared
	// backend for GET /health; "" when it has none.
	Component() (name, status string)
}

// LocalQuota is the tenants' quotas kept in this process.
type LocalQuota = quotas

// NewLocalQuota returns the in-process quotas for cfg.
func NewLocalQuota(cfg config.TenantQuota) *LocalQuota { return newQuotas(cfg) }

var _ Quota = (*quotas)(nil)

// Admit implements Quota.
func (q *quotas) Admit(_ context.Context, tenant string, now time.Time, busy time.Duration) (func(), error) {
	return q.admit(tenant, now, busy)
}

// Rate implements Quota.
func (q *quotas) Rate(_ context.Context, tenant string, now time.Time) error {
	return q.rate(tenant, now)
}

// Health implements Quota: the local quotas are never degraded.
func (q *quotas) Health() []string { return nil }

// Component implements Quota: no shared backend.
func (q *quotas) Component() (string, string) { return "", "" }

// quotas are the tenants' quotas of one service: a token bucket (rate, burst) and a
// cap on requests running or queued.
type quotas struct {
	cfg config.TenantQuota
	mu  sync.Mutex
	m   *simplelru.LRU[string, *tenantState]
}

type tenantState struct {
	bucket   *rate.Limiter // nil without a rate limit
	inFlight int
}

// quotaError is a tenant over its quota: why, and when to retry.
type quotaError struct {
	reason, msg string
	after       time.Duration
}

func (e *quotaError) Error() string { return e.msg }

func newQuotas(cfg config.TenantQuota) *quotas {
	m, err := simplelru.NewLRU[string, *tenantState](maxTenants, nil)
	if err != nil {
		panic(err) // only for a size < 1
	}
	return &quotas{cfg: cfg, m: m}
}

func (q *quotas) state(tenant string) *tenantState {
	st, ok := q.m.Get(tenant)
	if !ok {
		st = &tenantState{}
		if q.cfg.Rate > 0 {
			burst := q.cfg.Burst
			if burst == 0 {
				burst = max(1, int(q.cfg.Rate))
			}
			st.bucket = rate.NewLimiter(rate.Limit(q.cfg.Rate), burst)
		}
		q.m.Add(tenant, st)
	}
	return st
}

// admit takes one request of tenant's quota at now, or says when to retry (busy is the
// Retry-After for the in-flight cap). done gives the in-flight place back.
func (q *quotas) admit(tenant string, now time.Time, busy time.Duration) (done func(), err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := q.state(tenant)
	if q.cfg.MaxInFlight > 0 && st.inFlight >= q.cfg.MaxInFlight {
		return nil, &quotaError{reason: reasonTenantInFlight, after: busy,
			msg: fmt.Sprintf("tenant quota: %d requests of this tenant are already in progress; retry later", q.cfg.MaxInFlight)}
	}
	if err := q.take(st, now); err != nil {
		return nil, err
	}
	st.inFlight++
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			st.inFlight--
			q.mu.Unlock()
		})
	}, nil
}

// rate takes one token of tenant's bucket at now.
func (q *quotas) rate(tenant string, now time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.take(q.state(tenant), now)
}

func (q *quotas) take(st *tenantState, now time.Time) error {
	if st.bucket == nil {
		return nil
	}
	r := st.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now) // the token is not spent on a refused request
		return &quotaError{reason: reasonTenantRate, after: d,
			msg: fmt.Sprintf("tenant quota: more than %g requests per second; retry later", q.cfg.Rate)}
	}
	return nil
}
