package server

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/admission"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/testredis"
)

func redisStore(t *testing.T, url, prefix string) *admission.RedisStore {
	t.Helper()
	s, err := admission.NewRedisStore(admission.RedisOptions{URL: url, Prefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Two replicas of a service (two servers, each its own Redis connection) share a
// tenant's in-flight quota over REST: a request held on one makes the other answer 429.
func TestReplicasShareTenantQuotaThroughRedis(t *testing.T) {
	t.Parallel()
	addr := testredis.Addr(t)
	prefix := testredis.Prefix(t, addr)
	adm := config.DefaultAdmission()
	adm.Tenant = config.TenantQuota{MaxInFlight: 1}
	a := startAdmission(t, adm, redisStore(t, "redis://"+addr, prefix))
	b := startAdmission(t, adm, redisStore(t, "redis://"+addr, prefix))

	held := a.postAsync(t, "acme")
	resp := b.post(t, "acme")
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the other replica counts the request held on the first")
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	code, rep := a.health(t)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", rep.Status)
	require.Equal(t, "ok", rep.Checks["redis"])
	close(a.scorer.release)
	require.Equal(t, http.StatusOK, (<-held).StatusCode)
	bHeld := b.postAsync(t, "acme")
	close(b.scorer.release)
	require.Equal(t, http.StatusOK, (<-bHeld).StatusCode, "released on the first replica, free on the second")
}

// Redis unreachable: GET /health says degraded (still 200: the service serves, its
// quotas kept per replica) with redis: degraded, and the quota still refuses.
func TestHealthIsDegradedWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	adm := config.DefaultAdmission()
	adm.Tenant = config.TenantQuota{MaxInFlight: 1}
	h := startAdmission(t, adm, redisStore(t, "redis://"+dead, "fabric-test:down"))

	held := h.postAsync(t, "acme")
	require.Equal(t, http.StatusTooManyRequests, h.post(t, "acme").StatusCode, "the local fallback keeps the quota")
	require.Eventually(t, func() bool {
		code, rep := h.health(t)
		return code == http.StatusOK && rep.Status == "degraded" && rep.Checks["redis"] == "degraded" && len(rep.Reasons) == 1
	}, 10*time.Second, 20*time.Millisecond)
	close(h.scorer.release)
	require.Equal(t, http.StatusOK, (<-held).StatusCode)
}
