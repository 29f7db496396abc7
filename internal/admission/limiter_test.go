package admission

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hold takes n slots and returns their releases.
func hold(t *testing.T, l *Limiter, n int) []func() {
	t.Helper()
	var rs []func()
	for range n {
		r, err := l.Acquire(context.Background())
		require.NoError(t, err)
		rs = append(rs, r)
	}
	return rs
}

// queued waits until the limiter's queue holds n requests.
func queued(t *testing.T, l *Limiter, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return l.Waiting() == n }, 10*time.Second, time.Millisecond)
}

func TestLimiterQueueIsBounded(t *testing.T) {
	t.Parallel()
	l := NewLimiter(2, 1, time.Hour)
	rs := hold(t, l, 2)
	require.False(t, l.Full(), "the queue has room")

	got := make(chan error, 1)
	go func() {
		r, err := l.Acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	queued(t, l, 1)
	require.True(t, l.Full())

	_, err := l.Acquire(context.Background())
	require.ErrorIs(t, err, ErrQueueFull, "a full queue refuses at once")

	rs[0]()
	require.NoError(t, <-got, "the waiter got the released slot")
	rs[1]()
	require.EqualValues(t, 0, l.Running())
	require.EqualValues(t, 0, l.Waiting())
}

func TestLimiterWaitIsBounded(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1, 5, 20*time.Millisecond)
	rs := hold(t, l, 1)
	defer rs[0]()
	_, err := l.Acquire(context.Background())
	require.ErrorIs(t, err, ErrWaitTimeout)
	require.EqualValues(t, 0, l.Waiting())
}

// A waiter whose client goes away leaves the queue without ever holding a slot: the
// next release goes to the request behind it.
func TestLimiterCancelledWaiterLeavesWithoutWork(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1, 5, time.Hour)
	rs := hold(t, l, 1)

	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := l.Acquire(ctx)
		gone <- err
	}()
	queued(t, l, 1)
	next := make(chan func(), 1)
	go func() {
		r, err := l.Acquire(context.Background())
		if err == nil {
			next <- r
		}
	}()
	queued(t, l, 2)

	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)
	rs[0]()
	r := <-next
	require.EqualValues(t, 1, l.Running(), "the live waiter runs, the cancelled one never did")
	r()

	_, err := l.Acquire(ctx)
	require.ErrorIs(t, err, context.Canceled, "a request already abandoned is never admitted, even with free slots")
	require.EqualValues(t, 0, l.Running())
}

func TestLimiterReleaseIsIdempotent(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1, 0, 0)
	r := hold(t, l, 1)[0]
	r()
	r()
	require.EqualValues(t, 0, l.Running())
	hold(t, l, 1)
	_, err := l.Acquire(context.Background())
	require.ErrorIs(t, err, ErrQueueFull, "a double release did not create a second slot")
}
