package admission

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/decision-fabric/fabric/internal/config"
)

// Defaults of RedisOptions.
const (
	DefaultRedisPrefix  = "fabric:admission"
	DefaultRedisLease   = 30 * time.Second
	DefaultRedisTimeout = 250 * time.Millisecond
	DefaultRedisRetry   = time.Second
)

// RedisOptions configure a RedisStore.
type RedisOptions struct {
	// URL is redis:// or rediss:// (REDIS_URL); it may carry a password, which never
	// appears in an error or a log line.
	URL string
	// Prefix namespaces every key (DefaultRedisPrefix when empty).
	Prefix string
	// Lease is how long an in-flight slot outlives the last renewal of the replica
	// holding it: a replica that dies without releasing its slots frees them after
	// at most Lease. Held slots are renewed every Lease/3.
	Lease time.Duration
	// Timeout bounds each Redis call; past it the call counts as a failure.
	Timeout time.Duration
	// Retry is how long, after a failure, requests use the local fallback before
	// Redis is tried again (the renewal loop probes it meanwhile too).
	Retry time.Duration
	// Logger receives the outage and recovery lines; none when nil.
	Logger *slog.Logger
}

// RedisStore is one process's connection to the Redis through which the replicas of
// each service share their tenants' quotas. Each service takes its RedisQuota from it
// (Quota). Keys: <prefix>:{<service>:<tenant>}:rate holds the tenant's GCRA state (the
// theoretical arrival time, µs of Redis's clock), <prefix>:{<service>:<tenant>}:inflight
// is a sorted set of the holders of in-flight slots scored by the expiry of their
// lease. The braces keep a tenant's two keys in one Redis Cluster slot, so the Lua
// script that decides touches one slot.
//
// When Redis does not answer (or answers an error), quotas fall back to the local
// limiter of each replica — the same quota, enforced per replica, never unlimited — and
// Health reports the outage until Redis answers again.
type RedisStore struct {
	client   *redis.Client
	secret   string // the URL's password, scrubbed from logged errors
	prefix   string
	holder   string // this replica's id, the prefix of its lease members
	lease    time.Duration
	timeout  time.Duration
	retry    time.Duration
	log      *slog.Logger
	seq      atomic.Uint64
	downAt   atomic.Int64 // unix ns when the outage began; 0 while Redis answers
	retryAt  atomic.Int64 // unix ns before which requests skip Redis
	failures atomic.Int64

	mu   sync.Mutex
	held map[string]map[string]struct{} // in-flight key → members this replica holds

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// quietRedis silences go-redis's own process-wide logger (it writes dial failures
// to stderr on every attempt): the store logs an outage once, and its recovery.
var quietRedis sync.Once

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// errRedisURL is returned for a REDIS_URL that does not parse; it never quotes it.
var errRedisURL = errors.New("admission: REDIS_URL is not a valid redis:// or rediss:// URL")

// NewRedisStore connects lazily to opts.URL and starts the lease renewal. It fails
// only for an invalid URL: an unreachable Redis starts in the fallback (degraded).
func NewRedisStore(opts RedisOptions) (*RedisStore, error) {
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, errRedisURL // err may quote the URL and its password
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultRedisPrefix
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultRedisLease
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultRedisTimeout
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultRedisRetry
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	quietRedis.Do(func() { redis.SetLogger(discardRedisLog{}) })
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = opts.Timeout, opts.Timeout, opts.Timeout
	ro.MaxRetries = -1 // no retries: a failure falls back at once
	ro.ContextTimeoutEnabled = true
	ro.DisableIdentity = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &RedisStore{
		client:  redis.NewClient(ro),
		secret:  ro.Password,
		prefix:  opts.Prefix,
		holder:  hex.EncodeToString(id[:]),
		lease:   opts.Lease,
		timeout: opts.Timeout,
		retry:   opts.Retry,
		log:     opts.Logger,
		held:    map[string]map[string]struct{}{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.renewLoop()
	return s, nil
}

// Quota is service's tenant quotas cfg, shared through Redis.
func (s *RedisStore) Quota(service string, cfg config.TenantQuota) *RedisQuota {
	q := &RedisQuota{s: s, service: service, cfg: cfg, local: newQuotas(cfg)}
	if cfg.Rate > 0 {
		q.burst = cfg.Burst
		if q.burst == 0 {
			q.burst = max(1, int(cfg.Rate))
		}
		q.interval = max(1, int64(1e6/cfg.Rate)) // µs per token
	}
	return q
}

// Ping asks Redis whether it answers (and records the answer, as any call does).
func (s *RedisStore) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := s.client.Ping(ctx).Err()
	s.record(err)
	return err
}

// Degraded reports whether Redis failed its last call (quotas are per replica now)
// and since when.
func (s *RedisStore) Degraded() (bool, time.Time) {
	at := s.downAt.Load()
	return at != 0, time.Unix(0, at)
}

// Close releases the slots this replica still holds (best effort: their leases
// expire anyway), stops the renewal and closes the connections.
func (s *RedisStore) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	held := s.held
	s.held = map[string]map[string]struct{}{}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	for key, members := range held {
		ms := make([]any, 0, len(members))
		for m := range members {
			ms = append(ms, m)
		}
		if len(ms) > 0 {
			_ = s.client.ZRem(ctx, key, ms...).Err()
		}
	}
	return s.client.Close()
}

// crash stops the store as a killed replica would: no release, no renewal (tests).
func (s *RedisStore) crash() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	_ = s.client.Close()
}

// usable reports whether a request should ask Redis (not within Retry of a failure).
func (s *RedisStore) usable() bool {
	return time.Now().UnixNano() >= s.retryAt.Load()
}

// record notes the outcome of a Redis call: the start and end of an outage are
// logged once each.
func (s *RedisStore) record(err error) {
	if err == nil {
		if at := s.downAt.Swap(0); at != 0 {
			s.retryAt.Store(0)
			s.log.Info("admission: redis answers again; tenant quotas are shared across replicas",
				"outage", time.Since(time.Unix(0, at)).Round(time.Millisecond).String())
		}
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the request's client left: says nothing about Redis
	}
	s.failures.Add(1)
	now := time.Now()
	s.retryAt.Store(now.Add(s.retry).UnixNano())
	if s.downAt.CompareAndSwap(0, now.UnixNano()) {
		s.log.Warn("admission: redis unreachable; tenant quotas fall back to each replica's local limiter",
			"error", s.scrub(err))
	}
}

// scrub is err's text without the Redis password (go-redis does not put it in its
// errors; this holds whatever a dialer or proxy might say).
func (s *RedisStore) scrub(err error) string {
	msg := err.Error()
	if s.secret != "" {
		msg = strings.ReplaceAll(msg, s.secret, "[REDACTED]")
	}
	return msg
}

func (s *RedisStore) hold(key, member string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.held[key]
	if m == nil {
		m = map[string]struct{}{}
		s.held[key] = m
	}
	m[member] = struct{}{}
}

func (s *RedisStore) unhold(key, member string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.held[key]; m != nil {
		delete(m, member)
		if len(m) == 0 {
			delete(s.held, key)
		}
	}
}

// renewLoop extends the leases of the slots this replica holds every Lease/3; with
// none held it pings, so that an outage and its end are seen without traffic.
func (s *RedisStore) renewLoop() {
	defer close(s.done)
	t := time.NewTicker(max(s.lease/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.renew()
		}
	}
}

func (s *RedisStore) renew() {
	s.mu.Lock()
	batch := make(map[string][]any, len(s.held))
	for key, members := range s.held {
		args := make([]any, 0, len(members)+1)
		args = append(args, s.lease.Microseconds())
		for m := range members {
			args = append(args, m)
		}
		batch[key] = args
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if len(batch) == 0 {
		s.record(s.client.Ping(ctx).Err())
		return
	}
	pipe := s.client.Pipeline()
	for key, args := range batch {
		renewScript.Eval(ctx, pipe, []string{key}, args...) // EVALSHA cannot recover from NOSCRIPT in a pipeline
	}
	_, err := pipe.Exec(ctx)
	s.record(err)
}

// admitScript decides one request atomically, on Redis's clock (µs).
// KEYS[1]: the GCRA key, KEYS[2]: the in-flight sorted set.
// ARGV: interval µs per token (0: no rate), burst, in-flight limit (0: none), the
// holder's member, the lease µs.
// Returns {1, 0} admitted, {0, 0} the in-flight cap is full, {-1, µs} over the rate
// (retry after µs). A refused request spends no token and holds no slot.
var admitScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local lease = tonumber(ARGV[5])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= limit then
    return {0, 0}
  end
end
if interval > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
  if tat < now then tat = now end
  local newtat = tat + interval
  local allowat = newtat - burst * interval
  if allowat > now then
    return {-1, allowat - now}
  end
  redis.call('SET', KEYS[1], string.format('%.0f', newtat), 'PX', math.ceil((newtat - now) / 1000) + 1000)
end
if limit > 0 then
  redis.call('ZADD', KEYS[2], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], math.ceil(lease / 1000) + 1000)
end
return {1, 0}
`)

// renewScript extends the leases of members still present (ZADD XX: a member that
// expired and was pruned is not brought back). KEYS[1]: the in-flight set; ARGV[1]:
// the lease µs, ARGV[2..]: the members.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', exp, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
return 0
`)

// RedisQuota is one service's tenant quotas shared through a RedisStore, with the
// local quotas as the fallback while Redis does not answer.
type RedisQuota struct {
	s        *RedisStore
	service  string
	cfg      config.TenantQuota
	interval int64 // µs per token; 0: no rate limit
	burst    int
	local    *quotas
}

var _ Quota = (*RedisQuota)(nil)

// keys are tenant's GCRA and in-flight keys.
func (q *RedisQuota) keys(tenant string) (rate, inFlight string) {
	tag := q.s.prefix + ":{" + escapeKey(q.service) + ":" + escapeKey(tenant) + "}:"
	return tag + "rate", tag + "inflight"
}

// escapeKey keeps a name from closing the key's hash tag or colliding with another
// name: '{', '}', ':' and '%' are percent-encoded.
func escapeKey(s string) string {
	if !strings.ContainsAny(s, "{}:%") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '{', '}', ':', '%':
			fmt.Fprintf(&b, "%%%02X", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Admit implements Quota.
func (q *RedisQuota) Admit(ctx context.Context, tenant string, now time.Time, busy time.Duration) (func(), error) {
	return q.decide(ctx, tenant, now, busy, q.cfg.MaxInFlight)
}

// Rate implements Quota.
func (q *RedisQuota) Rate(ctx context.Context, tenant string, now time.Time) error {
	_, err := q.decide(ctx, tenant, now, 0, 0)
	return err
}

func (q *RedisQuota) decide(ctx context.Context, tenant string, now time.Time, busy time.Duration, limit int) (func(), error) {
	if q.interval == 0 && limit <= 0 {
		return func() {}, nil // no quota at all
	}
	if !q.s.usable() {
		return q.fallback(tenant, now, busy, limit)
	}
	rateKey, inFlightKey := q.keys(tenant)
	member := q.s.holder + ":" + strconv.FormatUint(q.s.seq.Add(1), 36)
	cctx, cancel := context.WithTimeout(ctx, q.s.timeout)
	res, err := admitScript.Run(cctx, q.s.client, []string{rateKey, inFlightKey},
		q.interval, q.burst, limit, member, q.s.lease.Microseconds()).Int64Slice()
	cancel()
	if err == nil && len(res) != 2 {
		err = errors.New("admission: unexpected reply from the quota script")
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The request's own context ended (the client left or its deadline
			// passed): nothing to decide, and nothing learnt about Redis.
			return nil, ctxErr
		}
		q.s.record(err)
		return q.fallback(tenant, now, busy, limit)
	}
	q.s.record(nil)
	switch res[0] {
	case 0:
		return nil, &quotaError{reason: reasonTenantInFlight, after: busy,
			msg: fmt.Sprintf("tenant quota: %d requests of this tenant are already in progress; retry later", limit)}
	case -1:
		return nil, &quotaError{reason: reasonTenantRate, after: time.Duration(res[1]) * time.Microsecond,
			msg: fmt.Sprintf("tenant quota: more than %g requests per second; retry later", q.cfg.Rate)}
	}
	if limit <= 0 {
		return func() {}, nil
	}
	q.s.hold(inFlightKey, member)
	var once sync.Once
	return func() {
		once.Do(func() {
			q.s.unhold(inFlightKey, member)
			// Not the request's context: it may have ended, the slot must be given
			// back all the same. On failure the lease frees it.
			rctx, cancel := context.WithTimeout(context.Background(), q.s.timeout)
			defer cancel()
			err := q.s.client.ZRem(rctx, inFlightKey, member).Err()
			if err != nil {
				q.s.record(err)
			}
		})
	}, nil
}

// fallback decides with this replica's local quotas: while Redis does not answer,
// each replica enforces the whole quota on its own (never unlimited).
func (q *RedisQuota) fallback(tenant string, now time.Time, busy time.Duration, limit int) (func(), error) {
	if limit <= 0 {
		return func() {}, q.local.rate(tenant, now)
	}
	return q.local.admit(tenant, now, busy)
}

// Health implements Quota.
func (q *RedisQuota) Health() []string {
	if down, since := q.s.Degraded(); down {
		return []string{fmt.Sprintf("redis unreachable (since %s ago): tenant quotas are enforced per replica by the local limiter until it answers again",
			time.Since(since).Round(time.Millisecond))}
	}
	return nil
}

// Component implements Quota.
func (q *RedisQuota) Component() (string, string) {
	if down, _ := q.s.Degraded(); down {
		return "redis", "degraded"
	}
	return "redis", "ok"
}
