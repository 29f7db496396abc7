package admission

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
)

func tenant(id string) *auth.Principal {
	return &auth.Principal{Subject: "u", TenantID: id, Roles: []string{auth.RoleProposer}}
}

var serviceIdentity = &auth.Principal{Subject: "fabric:decision-coordinator", TenantID: "t1", Roles: []string{auth.RoleService}}

func newController(t *testing.T, edit func(*config.Admission)) (*Controller, *prometheus.Registry) {
	t.Helper()
	cfg := config.DefaultAdmission()
	edit(&cfg)
	reg := prometheus.NewRegistry()
	c, err := New(cfg, reg)
	require.NoError(t, err)
	return c, reg
}

// requireRefusal checks err's code and that it says when to retry.
func requireRefusal(t *testing.T, err error, code codes.Code, retry int64) {
	t.Helper()
	require.Equal(t, code, status.Code(err), "%v", err)
	secs, ok := RetryAfter(err)
	require.True(t, ok, "a refusal carries Retry-After")
	require.Equal(t, retry, secs)
	md := retryAfterMD(err)
	require.Equal(t, []string{string(rune('0' + retry))}, md.Get(RetryAfterKey))
}

func TestOverloadIsUnavailableWithRetryAfter(t *testing.T) {
	t.Parallel()
	c, reg := newController(t, func(a *config.Admission) {
		a.MaxInFlight, a.MaxQueue, a.RetryAfter = 2, 0, config.Duration(3*time.Second)
		a.Tenant.MaxInFlight = 0
	})
	require.Nil(t, c.Health(), "healthy before any refusal")
	r1, err := c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err)
	r2, err := c.Admit(context.Background(), tenant("b"))
	require.NoError(t, err)
	require.True(t, c.Overloaded())

	_, err = c.Admit(context.Background(), tenant("c"))
	requireRefusal(t, err, codes.Unavailable, 3)
	require.Equal(t, 1.0, testutil.ToFloat64(c.refused.WithLabelValues(reasonQueueFull)))
	reasons := c.Health()
	require.Len(t, reasons, 1)
	require.Contains(t, reasons[0], "overloaded")

	// The service's own calls have their own budget: tenants' load does not refuse them.
	rs, err := c.Admit(context.Background(), serviceIdentity)
	require.NoError(t, err, "a service-identity call is admitted while tenants are refused")
	rs()

	r1()
	r2()
	require.False(t, c.Overloaded())
	n, err := testutil.GatherAndCount(reg, "fabric_admission_refused_total", "fabric_admission_in_flight", "fabric_admission_queued")
	require.NoError(t, err)
	require.Equal(t, 3, n)

	// Health turns back to ok once no request was refused for degraded_for.
	c.now = func() time.Time { return time.Now().Add(time.Minute) }
	require.Nil(t, c.Health())
}

func TestTenantRateIsResourceExhausted(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	c, _ := newController(t, func(a *config.Admission) { a.Tenant = config.TenantQuota{Rate: 0.5, Burst: 2} })
	c.now = func() time.Time { return now }
	for range 2 {
		r, err := c.Admit(context.Background(), tenant("greedy"))
		require.NoError(t, err, "the burst is admitted")
		r()
	}
	_, err := c.Admit(context.Background(), tenant("greedy"))
	requireRefusal(t, err, codes.ResourceExhausted, 2) // one token every 2s
	require.Nil(t, c.Health(), "a tenant over its quota is not an overloaded service")

	r, err := c.Admit(context.Background(), tenant("other"))
	require.NoError(t, err, "other tenants keep their own quota")
	r()
	rs, err := c.Admit(context.Background(), serviceIdentity)
	require.NoError(t, err, "service-identity calls are not counted against the tenant")
	rs()

	now = now.Add(2 * time.Second)
	r, err = c.Admit(context.Background(), tenant("greedy"))
	require.NoError(t, err, "a refused request spent no token: one is back after 2s")
	r()
}

func TestTenantInFlightIsResourceExhausted(t *testing.T) {
	t.Parallel()
	c, _ := newController(t, func(a *config.Admission) {
		a.MaxInFlight, a.Tenant.MaxInFlight, a.RetryAfter = 10, 2, config.Duration(time.Second)
	})
	r1, err := c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err)
	r2, err := c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err)
	_, err = c.Admit(context.Background(), tenant("a"))
	requireRefusal(t, err, codes.ResourceExhausted, 1)
	r, err := c.Admit(context.Background(), tenant("b"))
	require.NoError(t, err, "one tenant cannot take the whole service")
	r()
	r1()
	r1() // twice: counted once
	r, err = c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err)
	_, err = c.Admit(context.Background(), tenant("a"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "a double release freed one place only")
	r()
	r2()
}

// A request queued for a slot whose client goes away is dropped (CANCELED), gives its
// tenant place back, and is not counted as overload.
func TestQueuedRequestOfAGoneClientIsDropped(t *testing.T) {
	t.Parallel()
	c, _ := newController(t, func(a *config.Admission) {
		a.MaxInFlight, a.MaxQueue, a.MaxWait, a.Tenant.MaxInFlight = 1, 4, config.Duration(time.Minute), 2
	})
	r, err := c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := c.Admit(ctx, tenant("a"))
		got <- err
	}()
	queued(t, c.requests, 1)
	cancel()
	require.Equal(t, codes.Canceled, status.Code(<-got))
	require.Equal(t, 1.0, testutil.ToFloat64(c.refused.WithLabelValues(reasonClientGone)))
	require.Nil(t, c.Health())
	r2, err := c.Admit(context.Background(), serviceIdentity)
	require.NoError(t, err)
	r2()
	r()
	r, err = c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err, "the dropped request gave its tenant place back")
	r()
}

func TestStreamsHaveTheirOwnCap(t *testing.T) {
	t.Parallel()
	c, _ := newController(t, func(a *config.Admission) { a.MaxInFlight, a.MaxQueue, a.MaxStreams = 1, 0, 1 })
	r, err := c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err)
	s, err := c.AdmitStream(context.Background(), tenant("a"))
	require.NoError(t, err, "a watch does not need a request slot")
	_, err = c.AdmitStream(context.Background(), tenant("b"))
	require.Equal(t, codes.Unavailable, status.Code(err))
	s()
	r()
}

func TestPublicMethodsAreAlwaysAdmitted(t *testing.T) {
	t.Parallel()
	c, _ := newController(t, func(a *config.Admission) { a.MaxInFlight, a.MaxQueue = 1, 0 })
	r, err := c.Admit(context.Background(), tenant("a"))
	require.NoError(t, err)
	defer r()
	_, err = c.Admit(context.Background(), nil)
	require.NoError(t, err, "health checks (no principal) answer under overload")
}

// A long poll (wait_ms set) does not take a request slot: clients following their
// proposals cannot starve submissions.
func TestLongPollsDoNotHoldRequestSlots(t *testing.T) {
	t.Parallel()
	c, _ := newController(t, func(a *config.Admission) { a.MaxInFlight, a.MaxQueue, a.MaxStreams = 1, 0, 2 })
	ctx := auth.WithPrincipal(context.Background(), tenant("a"))
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := c.UnaryServerInterceptor()(ctx, &coordinatorv1.GetProposalRequest{Id: "p", WaitMs: 5000}, &grpc.UnaryServerInfo{},
			func(context.Context, any) (any, error) { <-held; return nil, nil })
		done <- err
	}()
	require.Eventually(t, func() bool { return c.streams.Running() == 1 }, 10*time.Second, time.Millisecond)
	ran := false
	_, err := c.UnaryServerInterceptor()(ctx, &coordinatorv1.SubmitProposalRequest{}, &grpc.UnaryServerInfo{},
		func(context.Context, any) (any, error) { ran = true; return nil, nil })
	require.NoError(t, err)
	require.True(t, ran, "the slot was free while the long poll waited")
	close(held)
	require.NoError(t, <-done)
}
