// Package admission decides, before a request does any work, whether a service runs it
// now, lets it wait briefly, or refuses it — so that beyond its capacity a service
// answers fast and keeps its goodput instead of queueing without bound until every
// client times out.
//
// One Controller guards one service (one gRPC server, REST included: the gateway goes
// through the same interceptors). Its budgets:
//
//   - requests: MaxInFlight run at once, MaxQueue more wait at most MaxWait, first come
//     first served; beyond that UNAVAILABLE (HTTP 503) at once. Each tenant also has a
//     quota (token bucket and in-flight cap); beyond it RESOURCE_EXHAUSTED (HTTP 429).
//   - service: calls made with the fabric's service identity (one service calling
//     another about work it already accepted) have their own slots, bypass the tenant
//     quotas, and never queue behind tenants' requests. A service's calls to another
//     service are counted by the callee's Controller, not the caller's, so a nested
//     call is never refused because its caller holds the slots.
//   - streams: long-lived server streams (watches) and long polls (a request with
//     wait_ms set) have their own cap and no queue: they mostly wait, and would
//     otherwise hold request slots idle.
//
// Every refusal carries how long to wait: a google.rpc.RetryInfo detail and a
// "retry-after" header (seconds), which the REST gateway turns into Retry-After.
// A request whose context ended while it waited is dropped without running.
package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
)

// RetryAfterKey is the gRPC response header carrying a refusal's Retry-After, in
// whole seconds.
const RetryAfterKey = "retry-after"

// Refusal reasons, the values of the metric label "reason".
const (
	reasonQueueFull      = "queue_full"
	reasonWaitTimeout    = "wait_timeout"
	reasonTenantRate     = "tenant_rate"
	reasonTenantInFlight = "tenant_in_flight"
	reasonServiceBudget  = "service_budget"
	reasonStreams        = "streams"
	reasonClientGone     = "client_gone"
)

// Controller is one service's admission control. Its methods are safe for concurrent
// use.
type Controller struct {
	cfg      config.Admission
	requests *Limiter
	service  *Limiter
	streams  *Limiter
	tenants  Quota
	now      func() time.Time
	lastShed atomic.Int64 // unix nanoseconds of the last 503, 0 if none
	shed     atomic.Int64 // 503s since start
	refused  *prometheus.CounterVec
}

// Option changes how New builds a Controller.
type Option func(*options)

type options struct{ quota Quota }

// WithQuota makes the Controller keep its tenants' quotas in q (e.g. a RedisQuota
// shared by the service's replicas) instead of in this process.
func WithQuota(q Quota) Option { return func(o *options) { o.quota = q } }

// New returns the Controller for cfg; its metrics go to reg (none when nil).
func New(cfg config.Admission, reg prometheus.Registerer, opts ...Option) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.quota == nil {
		o.quota = NewLocalQuota(cfg.Tenant)
	}
	maxWait := time.Duration(cfg.MaxWait)
	c := &Controller{
		cfg:      cfg,
		requests: NewLimiter(cfg.MaxInFlight, cfg.MaxQueue, maxWait),
		// Service calls queue (up to their own budget) rather than fail: the work they
		// belong to was accepted already.
		service: NewLimiter(cfg.ServiceMaxInFlight, cfg.ServiceMaxInFlight, maxWait),
		streams: NewLimiter(cfg.MaxStreams, 0, 0),
		tenants: o.quota,
		now:     time.Now,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fabric_admission_refused_total",
			Help: "Requests refused by admission control (503 overload, 429 tenant quota), or dropped because their client left while they waited, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		gauge := func(name, help string, f func() int64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
		}
		cols := []prometheus.Collector{
			c.refused,
			gauge("fabric_admission_in_flight", "Requests holding a slot (tenant requests).", c.requests.Running),
			gauge("fabric_admission_queued", "Requests waiting for a slot.", c.requests.Waiting),
			gauge("fabric_admission_service_in_flight", "Service-identity calls holding a slot.", c.service.Running),
			gauge("fabric_admission_streams", "Open server streams.", c.streams.Running),
		}
		if name, _ := c.tenants.Component(); name != "" {
			cols = append(cols, gauge("fabric_admission_shared_quota_degraded",
				"1 while the shared quota backend (Redis) does not answer and tenant quotas are kept per replica.",
				func() int64 {
					if _, st := c.tenants.Component(); st != "ok" {
						return 1
					}
					return 0
				}))
		}
		for _, col := range cols {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("admission: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Overloaded reports whether a tenant's request would be refused at once: every slot
// taken and the queue full. It is the cheap guard run before authentication and
// before a REST body is parsed; Admit decides for the requests it lets through.
func (c *Controller) Overloaded() bool { return c.requests.Full() }

// Shed records a request refused by the cheap guard and returns the refusal.
func (c *Controller) Shed() error { return c.overload(reasonQueueFull) }

// Admit decides on a unary call by principal p (nil for public methods, which are
// always admitted). On success the caller runs the request and then calls release.
// Otherwise the error is a gRPC status: UNAVAILABLE (overload), RESOURCE_EXHAUSTED
// (the tenant's quota), or CANCELED/DEADLINE_EXCEEDED when ctx ended while waiting.
func (c *Controller) Admit(ctx context.Context, p *auth.Principal) (release func(), err error) {
	if p == nil {
		return func() {}, nil
	}
	if isService(p) {
		release, err := c.service.Acquire(ctx)
		if err != nil {
			return nil, c.refusal(err, reasonServiceBudget)
		}
		return release, nil
	}
	doneTenant, err := c.tenants.Admit(ctx, p.TenantID, c.now(), time.Duration(c.cfg.RetryAfter))
	if err != nil {
		return nil, c.quota(err)
	}
	slot, err := c.requests.Acquire(ctx)
	if err != nil {
		doneTenant()
		reason := reasonQueueFull
		if errors.Is(err, ErrWaitTimeout) {
			reason = reasonWaitTimeout
		}
		return nil, c.refusal(err, reason)
	}
	return func() { slot(); doneTenant() }, nil
}

// AdmitStream decides on a server stream or a long poll by principal p: the tenant's
// rate applies (not its in-flight cap: a watch lasts long), and the service's stream
// cap, without a queue.
func (c *Controller) AdmitStream(ctx context.Context, p *auth.Principal) (release func(), err error) {
	if p == nil {
		return func() {}, nil
	}
	if !isService(p) {
		if err := c.tenants.Rate(ctx, p.TenantID, c.now()); err != nil {
			return nil, c.quota(err)
		}
	}
	release, err = c.streams.Acquire(ctx)
	if err != nil {
		return nil, c.refusal(err, reasonStreams)
	}
	return release, nil
}

// Health lists why the service is degraded (nil when it is not): it refused a request
// for overload within the last DegradedFor, or its shared quota backend (Redis) is
// unreachable and the tenants' quotas are kept per replica meanwhile.
func (c *Controller) Health() []string {
	reasons := c.tenants.Health()
	last := c.lastShed.Load()
	if last == 0 || c.now().Sub(time.Unix(0, last)) > time.Duration(c.cfg.DegradedFor) {
		return reasons
	}
	return append(reasons, fmt.Sprintf("overloaded: refusing requests with 503 (last %s ago, %d since start; in flight %d/%d, queued %d/%d)",
		c.now().Sub(time.Unix(0, last)).Round(time.Millisecond), c.shed.Load(),
		c.requests.Running(), c.cfg.MaxInFlight, c.requests.Waiting(), c.cfg.MaxQueue))
}

// Components are the statuses of the shared backends admission depends on, for the
// checks of GET /health (e.g. "redis": "ok" or "degraded"); nil when it has none.
func (c *Controller) Components() map[string]string {
	if name, st := c.tenants.Component(); name != "" {
		return map[string]string{name: st}
	}
	return nil
}

// isService reports whether p is the fabric's own service identity: a token carrying
// the service role alone (the verifier accepts that role only from the service key).
func isService(p *auth.Principal) bool {
	return len(p.Roles) == 1 && slices.Contains(p.Roles, auth.RoleService)
}

// refusal maps a Limiter error to the caller's status.
func (c *Controller) refusal(err error, reason string) error {
	if ctxErr := status.FromContextError(err); errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		c.refused.WithLabelValues(reasonClientGone).Inc()
		return ctxErr.Err()
	}
	return c.overload(reason)
}

func (c *Controller) overload(reason string) error {
	c.refused.WithLabelValues(reason).Inc()
	c.shed.Add(1)
	c.lastShed.Store(c.now().UnixNano())
	return refuse(codes.Unavailable, "the service is overloaded; retry later", time.Duration(c.cfg.RetryAfter))
}

func (c *Controller) quota(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// A shared quota (Redis) was asked while the client left.
		c.refused.WithLabelValues(reasonClientGone).Inc()
		return status.FromContextError(err).Err()
	}
	var q *quotaError
	if !errors.As(err, &q) {
		return status.Error(codes.Internal, "admission: internal error")
	}
	c.refused.WithLabelValues(q.reason).Inc()
	return refuse(codes.ResourceExhausted, q.msg, q.after)
}

// refuse is a status carrying after as a RetryInfo detail (rounded up to whole
// seconds, at least 1, as HTTP's Retry-After counts).
func refuse(code codes.Code, msg string, after time.Duration) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(retrySeconds(after)) * time.Second)}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// retrySeconds is after in whole seconds, rounded up, at least 1.
func retrySeconds(after time.Duration) int64 {
	return max(1, int64(math.Ceil(after.Seconds())))
}

// RetryAfter is the Retry-After, in whole seconds, that err (a refusal) asks for, and
// whether it asks for one.
func RetryAfter(err error) (int64, bool) {
	st, ok := status.FromError(err)
	if !ok || (st.Code() != codes.Unavailable && st.Code() != codes.ResourceExhausted) {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return retrySeconds(ri.GetRetryDelay().AsDuration()), true
		}
	}
	return 0, false
}

// retryAfterMD is the response header metadata carrying a refusal's Retry-After; nil
// for other errors.
func retryAfterMD(err error) metadata.MD {
	if secs, ok := RetryAfter(err); ok {
		return metadata.Pairs(RetryAfterKey, strconv.FormatInt(secs, 10))
	}
	return nil
}
