package server

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestEchoedInputIsClipped: a request value quoted in an error reaches neither
// the caller nor the log in full, whether a handler or the gateway's JSON
// decoder quoted it.
func TestEchoedInputIsClipped(t *testing.T) {
	t.Parallel()
	h := start(t)
	long := strings.Repeat("A", 3500) // under the harness's 4096-byte body limit

	for name, body := range map[string]string{
		"handler": `{"proposal_id":"echo` + long + `"}`,
		"decoder": `{"proposal_id":` + strings.Repeat("1", 3500) + `}`,
	} {
		code, resp := h.post(t, body, true)
		require.Equal(t, http.StatusBadRequest, code, name)
		msg, _ := resp["message"].(string)
		require.LessOrEqual(t, utf8.RuneCountInString(msg), MaxMessageRunes+32, name)
		require.Contains(t, msg, "bytes)", name)
	}
	for _, line := range strings.Split(h.logs.String(), "\n") {
		require.Less(t, len(line), 3000, "one log line quotes the input in full: %.200s", line)
	}
}

func TestIdempotencyKeyReusedIs422(t *testing.T) {
	t.Parallel()
	err := IdempotencyKeyReused("reused")
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, http.StatusUnprocessableEntity, httpStatusOf(err))
	require.Equal(t, http.StatusConflict, httpStatusOf(status.Error(codes.FailedPrecondition, "other")))
	require.Equal(t, http.StatusBadRequest, httpStatusOf(status.Error(codes.InvalidArgument, "x")))
}

func TestNotConfiguredIs412(t *testing.T) {
	t.Parallel()
	err := NotConfigured("webauthn is not configured")
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, http.StatusPreconditionFailed, httpStatusOf(err))
}
