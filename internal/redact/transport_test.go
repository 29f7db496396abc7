package redact

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTransportErrorDropsTheURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://user:s3cret@127.0.0.1:1/hook?token=t0ken", nil)
	require.NoError(t, err)
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err)
	require.Contains(t, err.Error(), "t0ken", "the raw error quotes the URL")

	got := TransportError(err)
	require.NotContains(t, got.Error(), "t0ken")
	require.NotContains(t, got.Error(), "s3cret")
	require.Contains(t, got.Error(), "post request")
	require.True(t, errors.Is(got, context.DeadlineExceeded), "the cause is kept: %v", got)

	plain := errors.New("other")
	require.Equal(t, plain, TransportError(plain))
}
