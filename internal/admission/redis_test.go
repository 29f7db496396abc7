package admission

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/testredis"
)

func newRedisStore(t testing.TB, url, prefix string, lease time.Duration, log *slog.Logger) *RedisStore {
	t.Helper()
	s, err := NewRedisStore(RedisOptions{URL: url, Prefix: prefix, Lease: lease, Retry: 50 * time.Millisecond, Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// replica is one service replica's admission sharing its tenants' quotas through s.
func replica(t testing.TB, s *RedisStore, tenant config.TenantQuota) *Controller {
	t.Helper()
	cfg := config.DefaultAdmission()
	cfg.MaxInFlight, cfg.MaxQueue, cfg.Tenant = 1000, 1000, tenant
	c, err := New(cfg, nil, WithQuota(s.Quota("decision-coordinator", tenant)))
	require.NoError(t, err)
	return c
}

// Two replicas share one tenant's in-flight cap: however the requests are spread
// over them, no more than the cap hold a slot at once.
func TestRedisInFlightIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	prefix := testredis.Prefix(t, addr)
	quota := config.TenantQuota{MaxInFlight: 3}
	a := replica(t, newRedisStore(t, "redis://"+addr, prefix, time.Minute, nil), quota)
	b := replica(t, newRedisStore(t, "redis://"+addr, prefix, time.Minute, nil), quota)

	var mu sync.Mutex
	var held []func()
	var refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Go(func() {
			r, err := c.Admit(context.Background(), tenant("shared"))
			if err != nil {
				assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err) // not require: another goroutine
				refused.Add(1)
				return
			}
			mu.Lock()
			held = append(held, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Len(t, held, 3, "the two replicas together admitted exactly the tenant's cap")
	require.EqualValues(t, 37, refused.Load())
	require.Equal(t, map[string]string{"redis": "ok"}, a.Components())
	require.Nil(t, a.Health())

	r, err := b.Admit(context.Background(), tenant("other"))
	require.NoError(t, err, "another tenant has its own cap")
	r()
	held[0]()
	held[0]() // twice: one place only
	r, err = b.Admit(context.Background(), tenant("shared"))
	require.NoError(t, err, "a place released on one replica is free on the other")
	_, err = a.Admit(context.Background(), tenant("shared"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "a double release freed one place only")
	r()
	for _, r := range held[1:] {
		r()
	}
}

// Two replicas share one tenant's token bucket: what they admit together never
// exceeds the burst plus the rate over the time taken.
func TestRedisRateIsSharedByReplicas(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	prefix := testredis.Prefix(t, addr)
	quota := config.TenantQuota{Rate: 2, Burst: 4}
	a := replica(t, newRedisStore(t, "redis://"+addr, prefix, time.Minute, nil), quota)
	b := replica(t, newRedisStore(t, "redis://"+addr, prefix, time.Minute, nil), quota)

	start := time.Now()
	admitted := 0
	for i := range 60 {
		c := a
		if i%2 == 1 {
			c = b
		}
		var err error
		if i%3 == 0 {
			_, err = c.AdmitStream(context.Background(), tenant("bursty")) // streams spend tokens too
		} else {
			var r func()
			r, err = c.Admit(context.Background(), tenant("bursty"))
			if err == nil {
				r()
			}
		}
		if err == nil {
			admitted++
			continue
		}
		requireRefusal(t, err, codes.ResourceExhausted, 1) // one token every 500ms
	}
	elapsed := time.Since(start)
	require.GreaterOrEqual(t, admitted, 4, "the burst is admitted")
	require.LessOrEqual(t, float64(admitted), 4+elapsed.Seconds()*2+1,
		"admitted %d in %s across both replicas: more than burst + rate allows", admitted, elapsed)

	r, err := a.Admit(context.Background(), tenant("calm"))
	require.NoError(t, err, "another tenant has its own bucket")
	r()
}

// A replica that dies without releasing its slots (no Close, no renewal) frees them
// when their lease runs out; a live replica's slots outlive the lease (renewed).
func TestRedisCrashedReplicaSlotsExpire(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	prefix := testredis.Prefix(t, addr)
	const lease = 600 * time.Millisecond
	quota := config.TenantQuota{MaxInFlight: 2}
	deadStore := newRedisStore(t, "redis://"+addr, prefix, lease, nil)
	dead := replica(t, deadStore, quota)
	liveStore := newRedisStore(t, "redis://"+addr, prefix, lease, nil)
	live := replica(t, liveStore, quota)

	held, err := live.Admit(context.Background(), tenant("t"))
	require.NoError(t, err)
	_, err = dead.Admit(context.Background(), tenant("t"))
	require.NoError(t, err)
	deadStore.crash()

	_, err = live.Admit(context.Background(), tenant("t"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "the dead replica's slot still counts until its lease ends")
	var again func()
	require.Eventually(t, func() bool {
		again, err = live.Admit(context.Background(), tenant("t"))
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "the dead replica's slot expired")
	defer again()

	// The live replica held its first slot for longer than the lease: it was renewed,
	// so the cap is still full.
	_, err = live.Admit(context.Background(), tenant("t"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "a live replica's slot is renewed past its lease")
	held()
}

// proxy forwards TCP to addr; down cuts the open connections and refuses new ones
// until up: Redis "going down" and coming back, for one client only.
type proxy struct {
	ln    net.Listener
	down  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, addr string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				_ = c.Close()
				continue
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() { p.cut(); _ = ln.Close() })
	return p
}

func (p *proxy) cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *proxy) up() { p.down.Store(false) }

// When Redis goes away the quotas fall back to each replica's local limiter — the
// same cap, never unlimited — and health says so until Redis answers again.
func TestRedisDownFallsBackToTheLocalLimiter(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	prefix := testredis.Prefix(t, addr)
	p := newProxy(t, addr)
	var logs bytes.Buffer
	s := newRedisStore(t, "redis://"+p.ln.Addr().String(), prefix, time.Minute,
		slog.New(slog.NewTextHandler(&logs, nil)))
	cfg := config.DefaultAdmission()
	cfg.Tenant = config.TenantQuota{MaxInFlight: 2}
	reg := prometheus.NewRegistry()
	c, err := New(cfg, reg, WithQuota(s.Quota("decision-coordinator", cfg.Tenant)))
	require.NoError(t, err)
	degraded := func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "fabric_admission_shared_quota_degraded" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no fabric_admission_shared_quota_degraded")
		return 0
	}

	r, err := c.Admit(context.Background(), tenant("t"))
	require.NoError(t, err)
	r()
	require.Equal(t, map[string]string{"redis": "ok"}, c.Components())
	require.Zero(t, degraded())

	p.cut()
	r1, err := c.Admit(context.Background(), tenant("t"))
	require.NoError(t, err, "admitted by the local fallback")
	r2, err := c.Admit(context.Background(), tenant("t"))
	require.NoError(t, err)
	_, err = c.Admit(context.Background(), tenant("t"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "the fallback keeps the cap: never unlimited")
	require.Equal(t, map[string]string{"redis": "degraded"}, c.Components())
	require.Equal(t, 1.0, degraded())
	reasons := c.Health()
	require.Len(t, reasons, 1)
	require.Contains(t, reasons[0], "redis unreachable")
	require.Contains(t, logs.String(), "fall back to each replica")

	// Redis back: the next request after the retry delay goes to Redis again (whose
	// set does not hold the fallback's places), and health is ok.
	p.up()
	var held []func()
	require.Eventually(t, func() bool {
		if r, err := c.Admit(context.Background(), tenant("t")); err == nil {
			held = append(held, r)
		}
		return c.Components()["redis"] == "ok"
	}, 10*time.Second, 20*time.Millisecond)
	require.Nil(t, c.Health())
	require.Zero(t, degraded())
	require.Contains(t, logs.String(), "redis answers again")
	for _, r := range append(held, r1, r2) {
		r()
	}
}

// Redis unreachable from the start: the replica starts (degraded, local quotas), and
// the URL's password appears in no log line.
func TestRedisUnreachableAtStartIsDegradedNotUnlimited(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	var logs bytes.Buffer
	s := newRedisStore(t, "redis://:hunter2-secret@"+dead+"/0", "fabric-test:x", time.Minute,
		slog.New(slog.NewTextHandler(&logs, nil)))
	c := replica(t, s, config.TenantQuota{MaxInFlight: 1, Rate: 1000})
	r, err := c.Admit(context.Background(), tenant("t"))
	require.NoError(t, err)
	_, err = c.Admit(context.Background(), tenant("t"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	r()
	require.Equal(t, map[string]string{"redis": "degraded"}, c.Components())
	require.Contains(t, logs.String(), "redis unreachable")
	require.NotContains(t, logs.String(), "hunter2")
}

func TestRedisURLErrorsDoNotQuoteTheURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://:hunter2@host", "redis://:hunter2@host:notaport", "redis://:hunter2@[::1"} {
		_, err := NewRedisStore(RedisOptions{URL: u})
		require.Error(t, err, u)
		require.NotContains(t, err.Error(), "hunter2")
	}
}

func TestEscapeKeyKeepsTheHashTagClosed(t *testing.T) {
	t.Parallel()
	require.Equal(t, "acme", escapeKey("acme"))
	require.Equal(t, "a%7Bb%7Dc%3Ad%25", escapeKey("a{b}c:d%"))
	q := (&RedisStore{prefix: "p"}).Quota("svc", config.TenantQuota{})
	r1, f1 := q.keys("a:b")
	r2, _ := q.keys("a%3Ab")
	require.NotEqual(t, r1, r2, "distinct tenants never share keys")
	require.Equal(t, "p:{svc:a%3Ab}:inflight", f1)
}

// BenchmarkTenantQuota measures one admission (quota taken and given back) through
// Redis against the local limiter — the floor — in the same run.
func BenchmarkTenantQuota(b *testing.B) {
	addr := testredis.Addr(b)
	prefix := testredis.Prefix(b, addr)
	quota := config.TenantQuota{Rate: 1e6, Burst: 1e6, MaxInFlight: 1000}
	shared := replica(b, newRedisStore(b, "redis://"+addr, prefix, time.Minute, nil), quota)
	cfg := config.DefaultAdmission()
	cfg.Tenant = quota
	local, err := New(cfg, nil)
	require.NoError(b, err)
	ctx := context.Background()
	var localNs, redisNs time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		r, err := local.Admit(ctx, tenant("bench"))
		if err != nil {
			b.Fatal(err)
		}
		r()
		t1 := time.Now()
		r, err = shared.Admit(ctx, tenant("bench"))
		if err != nil {
			b.Fatal(err)
		}
		r()
		localNs += t1.Sub(t0)
		redisNs += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(localNs.Nanoseconds())/n, "local-ns/admit")
	b.ReportMetric(float64(redisNs.Nanoseconds())/n, "redis-ns/admit")
	b.ReportMetric(float64(redisNs)/float64(max(localNs, 1)), "redis/local")
	if down, _ := shared.tenants.(*RedisQuota).s.Degraded(); down {
		b.Fatal("Redis failed during the benchmark: the figures are the fallback's")
	}
}

// A replica stopped gracefully gives its places back at once (no wait for the lease).
func TestRedisCloseReleasesHeldSlots(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	prefix := testredis.Prefix(t, addr)
	quota := config.TenantQuota{MaxInFlight: 1}
	stopping, err := NewRedisStore(RedisOptions{URL: "redis://" + addr, Prefix: prefix, Lease: time.Hour})
	require.NoError(t, err)
	a := replica(t, stopping, quota)
	b := replica(t, newRedisStore(t, "redis://"+addr, prefix, time.Hour, nil), quota)
	_, err = a.Admit(context.Background(), tenant("t"))
	require.NoError(t, err)
	_, err = b.Admit(context.Background(), tenant("t"))
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	require.NoError(t, stopping.Close())
	r, err := b.Admit(context.Background(), tenant("t"))
	require.NoError(t, err, "the stopped replica released its place (the lease is an hour)")
	r()
}

// A request whose client already left is not decided, and says nothing about Redis:
// the quota stays shared and healthy.
func TestRedisQuotaOfAGoneClient(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	prefix := testredis.Prefix(t, addr)
	c := replica(t, newRedisStore(t, "redis://"+addr, prefix, time.Minute, nil), config.TenantQuota{MaxInFlight: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Admit(ctx, tenant("t"))
	require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
	require.Equal(t, map[string]string{"redis": "ok"}, c.Components())
	r, err := c.Admit(context.Background(), tenant("t"))
	require.NoError(t, err, "the gone client took no place")
	r()
}
