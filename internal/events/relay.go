package events

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/decision-fabric/fabric/internal/kafkaurl"
	"github.com/decision-fabric/fabric/internal/store"
)

// NewProducer is the client the relay publishes with: idempotent (franz-go's default),
// acks from all in-sync replicas, TLS and SASL/PLAIN as KAFKA_URL says. extra options
// come last (tests).
func NewProducer(t kafkaurl.Target, clientID string, extra ...kgo.Opt) (*kgo.Client, error) {
	if len(t.Brokers) == 0 {
		return nil, fmt.Errorf("events: KAFKA_URL names no broker")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(t.Brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(4 * maxBatch),
		// A record the broker keeps refusing fails after this long (when it is safe:
		// not in flight) and the relay retries it with its own backoff.
		kgo.RecordDeliveryTimeout(DeliveryTimeout),
	}
	if t.TLS {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if t.User != "" {
		opts = append(opts, kgo.SASL(plain.Auth{User: t.User, Pass: t.Password}.AsMechanism()))
	}
	c, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("events: kafka client: %w", err)
	}
	return c, nil
}

// Config configures a Relay.
type Config struct {
	Store  store.Store
	Client *kgo.Client // the relay closes it
	Topic  string
	// Owner names this relay's leases: unique per process.
	Owner string
	// Lease is how long a claim lasts (default 30s): a relay that dies holding events
	// leaves them to another after this long. Timeout bounds one batch's publication
	// (default 10s, less than Lease).
	Lease, Timeout time.Duration
	// Interval is how often the relay looks at the outbox besides Kick (default 1s).
	Interval time.Duration
	// Batch is how many events one claim takes (default and at most 500).
	Batch int
	// MinBackoff and MaxBackoff bound the delay before an event that failed is
	// published again, doubling per attempt (defaults 250ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// Secrets are scrubbed from error texts before they are logged, stored or shown
	// (the SASL password).
	Secrets    []string
	Logger     *slog.Logger
	Now        func() time.Time
	Registerer prometheus.Registerer
}

const maxBatch = 500

// DeliveryTimeout is the producer's record delivery timeout, and the relay's default
// Timeout.
const DeliveryTimeout = 10 * time.Second

// Relay publishes the event outbox. One runs per coordinator; relays of several
// coordinators sharing a store claim disjoint events.
type Relay struct {
	cfg  Config
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// started: Start ran (Close then waits for the loop).
	started atomic.Bool

	backlog   atomic.Int64
	published atomic.Int64
	mu        sync.Mutex
	lastErr   string
	oldest    time.Time

	mPublished, mFailed prometheus.Counter
	mBacklog            prometheus.Gauge
}

// NewRelay returns a relay; Start runs it.
func NewRelay(cfg Config) (*Relay, error) {
	if cfg.Store == nil || cfg.Client == nil || cfg.Topic == "" || cfg.Owner == "" {
		return nil, fmt.Errorf("events: relay needs a store, a client, a topic and an owner")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Lease, 30*time.Second)
	def(&cfg.Timeout, DeliveryTimeout)
	def(&cfg.Interval, time.Second)
	def(&cfg.MinBackoff, 250*time.Millisecond)
	def(&cfg.MaxBackoff, 30*time.Second)
	if cfg.Timeout >= cfg.Lease {
		cfg.Timeout = cfg.Lease / 2
	}
	if cfg.Batch <= 0 || cfg.Batch > maxBatch {
		cfg.Batch = maxBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Relay{cfg: cfg, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		mPublished: prometheus.NewCounter(prometheus.CounterOpts{Name: "fabric_lifecycle_events_published_total",
			Help: "Lifecycle events the broker acknowledged."}),
		mFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "fabric_lifecycle_events_failed_total",
			Help: "Failed attempts to publish a lifecycle event (each retried)."}),
		mBacklog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fabric_lifecycle_events_backlog",
			Help: "Lifecycle events waiting in the outbox after the last sweep."}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.mPublished, r.mFailed, r.mBacklog} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("events: metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Start runs the relay in its own goroutine until Close.
func (r *Relay) Start() {
	if r.started.CompareAndSwap(false, true) {
		go r.run()
	}
}

// Kick asks for a sweep now (after a commit staged events).
func (r *Relay) Kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close stops the relay and its client. Events it held and had not published are due
// again at once for the next relay; events in flight may reach the broker twice.
func (r *Relay) Close() {
	r.once.Do(func() {
		close(r.stop)
		if r.started.Load() {
			select {
			case <-r.done:
			case <-time.After(r.cfg.Timeout):
				// A publication waits for a broker that does not answer: closing the
				// client fails its records, which stay in the outbox.
				r.cfg.Client.Close()
				<-r.done
			}
		}
		r.cfg.Client.Close()
	})
}

// Status is what /health shows.
type Status struct {
	Backlog   int64     // events waiting after the last sweep
	Oldest    time.Time // the oldest waiting event's commit time
	Published int64     // events this relay published and deleted from the outbox
	LastError string    // the last failure since the last clean sweep; "" when none
}

// Status reports the relay.
func (r *Relay) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{Backlog: r.backlog.Load(), Oldest: r.oldest, Published: r.published.Load(), LastError: r.lastErr}
}

// Health is the relay's line on GET /health: "ok", or the backlog and the last error.
// A backlog informs without degrading the service (events wait, in order).
func (r *Relay) Health() string {
	st := r.Status()
	if st.Backlog == 0 && st.LastError == "" {
		return "ok"
	}
	msg := fmt.Sprintf("%d event(s) waiting for Kafka topic %s", st.Backlog, r.cfg.Topic)
	if !st.Oldest.IsZero() {
		msg += fmt.Sprintf(", oldest %s", r.cfg.Now().Sub(st.Oldest).Truncate(time.Second))
	}
	if st.LastError != "" {
		msg += "; last error: " + st.LastError
	}
	return msg
}

func (r *Relay) run() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-r.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		r.Sweep(ctx)
		cancel()
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// Sweep publishes what is due until nothing is, or a publication fails, and returns
// how many events the broker acknowledged. Each round claims at most one event per
// proposal (the store hands out only a proposal's oldest), publishes the round and
// waits for every acknowledgement before the next: a proposal's event N+1 is never
// sent before N is acknowledged.
func (r *Relay) Sweep(ctx context.Context) int {
	total := 0
	clean := true
	for ctx.Err() == nil {
		n, failed, err := r.round(ctx)
		total += n
		if err != nil {
			clean = false
			if ctx.Err() == nil {
				r.cfg.Logger.WarnContext(ctx, "lifecycle events: sweep failed; retried", "error", r.setErr(err.Error()))
			}
			break
		}
		if failed > 0 {
			clean = false
			break
		}
		if n == 0 {
			break
		}
	}
	if clean {
		r.setErr("")
	}
	r.refreshBacklog(context.WithoutCancel(ctx))
	return total
}

// round claims and publishes one batch: acknowledged events are deleted, failed ones
// released for a retry after a backoff.
func (r *Relay) round(ctx context.Context) (published, failed int, err error) {
	now := r.cfg.Now()
	evs, err := r.cfg.Store.EventOutbox().Claim(ctx, r.cfg.Owner, now, now.Add(r.cfg.Lease), r.cfg.Batch)
	if err != nil || len(evs) == 0 {
		return 0, 0, err
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	errs := make([]error, len(evs))
	var wg sync.WaitGroup
	wg.Add(len(evs))
	for i, e := range evs {
		r.cfg.Client.Produce(pctx, Record(r.cfg.Topic, e), func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	// An idempotent producer cannot give up on a record a broker may have written
	// (sent, no answer): it keeps retrying until the broker answers. The relay waits,
	// saying so on /health; Close ends the wait by closing the client.
	acked := make(chan struct{})
	go func() { wg.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-pctx.Done():
		select {
		case <-acked:
		default:
			r.setErr(fmt.Sprintf("%d event(s) sent without an answer from the broker after %s; waiting", len(evs), r.cfg.Timeout))
			<-acked
		}
	}
	var ok []int64
	var firstErr error
	byAttempts := map[int][]int64{}
	for i, e := range evs {
		if errs[i] == nil {
			ok = append(ok, e.Seq)
			continue
		}
		if firstErr == nil {
			firstErr = errs[i]
		}
		byAttempts[e.Attempts] = append(byAttempts[e.Attempts], e.Seq)
	}
	// Acknowledged events are deleted even when the relay is stopping.
	mctx, mcancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
	defer mcancel()
	if len(ok) > 0 {
		// Only the events this relay still holds are deleted and counted: one whose
		// lease ended while the broker was slow was claimed again by another relay,
		// which publishes it again (consumers drop the repeat by event id) and counts it.
		n, err := r.cfg.Store.EventOutbox().Published(mctx, r.cfg.Owner, ok)
		if err != nil {
			// The lease ends and the events go out again: consumers drop the repeat.
			return 0, len(evs) - len(ok), fmt.Errorf("record published events: %w", err)
		}
		r.published.Add(int64(n))
		r.mPublished.Add(float64(n))
	}
	if firstErr == nil {
		return len(ok), 0, nil
	}
	msg := r.setErr(firstErr.Error())
	r.mFailed.Add(float64(len(evs) - len(ok)))
	for attempts, seqs := range byAttempts {
		next := r.cfg.Now().Add(r.backoff(attempts))
		if ctx.Err() != nil {
			next = r.cfg.Now() // stopping: due at once for the next relay
		}
		if err := r.cfg.Store.EventOutbox().Failed(mctx, r.cfg.Owner, seqs, msg, next); err != nil {
			r.cfg.Logger.WarnContext(ctx, "lifecycle events: record a failure", "error", r.scrub(err.Error()))
		}
	}
	if ctx.Err() == nil {
		r.cfg.Logger.WarnContext(ctx, "lifecycle events: publication failed; retried with backoff",
			"failed", len(evs)-len(ok), "published", len(ok), "error", msg)
	}
	return len(ok), len(evs) - len(ok), nil
}

// backoff is the delay before attempt attempts+1.
func (r *Relay) backoff(attempts int) time.Duration {
	d := r.cfg.MinBackoff
	for i := 1; i < attempts && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, r.cfg.MaxBackoff)
}

// setErr records msg (scrubbed, bounded) as the last error and returns it.
func (r *Relay) setErr(msg string) string {
	msg = r.scrub(msg)
	if len(msg) > 300 {
		msg = cut(msg, 300) + "…"
	}
	r.mu.Lock()
	r.lastErr = msg
	r.mu.Unlock()
	return msg
}

func (r *Relay) scrub(msg string) string {
	for _, s := range r.cfg.Secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "<REDACTED>")
		}
	}
	return msg
}

func (r *Relay) refreshBacklog(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	n, oldest, err := r.cfg.Store.EventOutbox().Backlog(ctx)
	if err != nil {
		r.cfg.Logger.WarnContext(ctx, "lifecycle events: backlog", "error", r.scrub(err.Error()))
		return
	}
	r.backlog.Store(n)
	r.mBacklog.Set(float64(n))
	r.mu.Lock()
	r.oldest = oldest
	r.mu.Unlock()
}

// DefaultOwner is a lease owner name unique to this process.
func DefaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("events-%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// FromConfig is the relay the coordinator runs for KAFKA_URL raw and topic: nil when
// raw is empty (events off). An invalid KAFKA_URL is an error naming no secret.
func FromConfig(raw, topic string, st store.Store, logger *slog.Logger, reg prometheus.Registerer) (*Relay, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	t, invalid := kafkaurl.Parse(raw)
	if invalid > 0 || len(t.Brokers) == 0 {
		return nil, fmt.Errorf("events: KAFKA_URL: %d invalid broker(s) and %d valid; want host:port[,host:port], optionally kafka:// or kafka+tls:// and user:password@", invalid, len(t.Brokers))
	}
	client, err := NewProducer(t, "decision-fabric-coordinator")
	if err != nil {
		return nil, err
	}
	r, err := NewRelay(Config{Store: st, Client: client, Topic: topic, Owner: DefaultOwner(),
		Secrets: []string{t.Password}, Logger: logger, Registerer: reg})
	if err != nil {
		client.Close()
		return nil, err
	}
	return r, nil
}
