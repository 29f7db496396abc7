package admission

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Why a Limiter refused a request.
var (
	// ErrQueueFull: every slot is taken and the queue is full.
	ErrQueueFull = errors.New("admission: queue full")
	// ErrWaitTimeout: the request waited the longest wait without getting a slot.
	ErrWaitTimeout = errors.New("admission: waited too long")
)

// Limiter bounds concurrency: at most max requests hold a slot, at most maxQueue more
// wait for one (first come, first served), each for at most maxWait. A waiter whose
// context ends leaves the queue at once and is never given a slot, so a request whose
// client went away does no work.
type Limiter struct {
	sem      *semaphore.Weighted
	max      int64
	maxQueue int64
	maxWait  time.Duration
	running  atomic.Int64
	waiting  atomic.Int64
}

// NewLimiter returns a Limiter with slots request slots and a queue of maxQueue waiting
// at most maxWait (maxQueue 0: no queue).
func NewLimiter(slots, maxQueue int, maxWait time.Duration) *Limiter {
	return &Limiter{sem: semaphore.NewWeighted(int64(slots)), max: int64(slots), maxQueue: int64(maxQueue), maxWait: maxWait}
}

// Acquire takes a slot, waiting in the queue when there is room. It returns the slot's
// release (call it exactly once), or ErrQueueFull, ErrWaitTimeout, or ctx's error when
// ctx ended before a slot was given.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !l.sem.TryAcquire(1) { // fails while others wait too: the queue stays fair
		if err := l.wait(ctx); err != nil {
			return nil, err
		}
	}
	l.running.Add(1)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			l.running.Add(-1)
			l.sem.Release(1)
		}
	}, nil
}

func (l *Limiter) wait(ctx context.Context) error {
	if l.waiting.Add(1) > l.maxQueue {
		l.waiting.Add(-1)
		return ErrQueueFull
	}
	defer l.waiting.Add(-1)
	wctx, cancel := context.WithTimeout(ctx, l.maxWait)
	defer cancel()
	if err := l.sem.Acquire(wctx, 1); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the client left the queue
		}
		return ErrWaitTimeout
	}
	if err := ctx.Err(); err != nil {
		// Acquire may succeed on a context that just ended: the client is gone, so
		// the slot goes to the next waiter instead.
		l.sem.Release(1)
		return err
	}
	return nil
}

// Full reports whether a new request would be refused at once (slots taken, queue
// full): the cheap check made before a request is even parsed. It reads two counters
// and may be a moment behind; Acquire decides.
func (l *Limiter) Full() bool {
	return l.waiting.Load() >= l.maxQueue && l.running.Load() >= l.max
}

// Running is the number of slots held.
func (l *Limiter) Running() int64 { return l.running.Load() }

// Waiting is the number of requests in the queue.
func (l *Limiter) Waiting() int64 { return l.waiting.Load() }
