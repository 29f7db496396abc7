package server

import (
	"context"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/decision-fabric/fabric/internal/admission"
)

// shedWhenFull is the cheap guard in front of the REST gateway: while every request
// slot of the service is taken and its queue is full, a request is answered 503 with
// Retry-After before its body is read, parsed or authenticated. Requests it lets
// through are admitted (or refused) by the gRPC interceptor, after authentication.
func shedWhenFull(next http.Handler, c *admission.Controller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Overloaded() {
			err := c.Shed()
			secs, _ := admission.RetryAfter(err)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			writeError(w, http.StatusServiceUnavailable, "the service is overloaded; retry later")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// retryAfter is the Retry-After (whole seconds) a gRPC error asks for: the
// "retry-after" response header set by admission control, else the error's RetryInfo.
func retryAfter(ctx context.Context, err error) (string, bool) {
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		for _, m := range []map[string][]string{md.HeaderMD, md.TrailerMD} {
			if v := m[admission.RetryAfterKey]; len(v) > 0 {
				return v[0], true
			}
		}
	}
	if secs, ok := admission.RetryAfter(err); ok {
		return strconv.FormatInt(secs, 10), true
	}
	return "", false
}
