package precheck

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newTestChecker() *checker {
	return &checker{client: newDefaultHTTPClient()}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestVaultHealthStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		want Status
		text string
	}{
		{200, StatusOK, "active"},
		{429, StatusOK, "standby"},
		{472, StatusOK, "disaster recovery"},
		{473, StatusOK, "performance standby"},
		{501, StatusOK, "not initialized"},
		{503, StatusOK, "sealed"},
		{404, StatusInvalid, "not a Vault health state"},
		{500, StatusInvalid, "not a Vault health state"},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			t.Parallel()
			srv := statusServer(t, "/v1/sys/health", tc.code)
			c := newTestChecker().vault(testCtx(t), srv.URL+"/")
			require.Equal(t, tc.want, c.Status, c.Detail)
			require.Contains(t, c.Detail, tc.text)
			require.Equal(t, srv.URL+"/v1/sys/health", c.Target)
		})
	}
}

func TestVaultUnreachableAndInvalid(t *testing.T) {
	t.Parallel()
	ck := newTestChecker()
	c := ck.vault(testCtx(t), "http://"+closedAddr(t))
	require.Equal(t, StatusUnreachable, c.Status)
	require.Contains(t, c.Detail, "connection refused")

	for _, bad := range []string{"vault:8200", "ftp://vault", "http://", "://x"} {
		c := ck.vault(testCtx(t), bad)
		require.Equal(t, StatusInvalid, c.Status, bad)
	}
}

func TestRegistryAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		want Status
	}{
		{200, StatusOK},
		{204, StatusOK},
		{301, StatusOK},
		{302, StatusOK},
		{401, StatusOK},
		{403, StatusOK},
		{404, StatusInvalid},
		{400, StatusInvalid},
		{500, StatusUnreachable},
		{502, StatusUnreachable},
		{503, StatusUnreachable},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			t.Parallel()
			srv := statusServer(t, "", tc.code)
			c := newTestChecker().registry(testCtx(t), srv.URL)
			require.Equal(t, tc.want, c.Status, c.Detail)
		})
	}
}

func TestRegistryRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	dead := "http://" + closedAddr(t) + "/elsewhere"
	srv := httptest.NewServer(http.RedirectHandler(dead, http.StatusFound))
	t.Cleanup(srv.Close)
	c := newTestChecker().registry(testCtx(t), srv.URL)
	require.Equal(t, StatusOK, c.Status, c.Detail)
	require.Contains(t, c.Detail, "302")
}

func TestCosignKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("not a key at all"), 0o600))
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))

	pub := ecKey(t).Public()
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	ecDER, err := x509.MarshalECPrivateKey(ecKey(t))
	require.NoError(t, err)

	tests := []struct {
		name string
		path string
		want Status
	}{
		{"encrypted sigstore", cosignKeyFile(t), StatusOK},
		{"encrypted cosign", writePEM(t, "ENCRYPTED COSIGN PRIVATE KEY", []byte{1, 2, 3}), StatusOK},
		{"public key", writePEM(t, "PUBLIC KEY", pubDER), StatusOK},
		{"pkcs8", writePEM(t, "PRIVATE KEY", pkcs8DER(t)), StatusOK},
		{"ec", writePEM(t, "EC PRIVATE KEY", ecDER), StatusOK},
		{"corrupt public key", writePEM(t, "PUBLIC KEY", []byte("nope")), StatusInvalid},
		{"corrupt pkcs8", writePEM(t, "PRIVATE KEY", []byte("nope")), StatusInvalid},
		{"rsa block type", writePEM(t, "RSA PRIVATE KEY", []byte("nope")), StatusInvalid},
		{"certificate", writePEM(t, "CERTIFICATE", []byte("nope")), StatusInvalid},
		{"empty encrypted", writePEM(t, "ENCRYPTED SIGSTORE PRIVATE KEY", nil), StatusInvalid},
		{"garbage", garbage, StatusInvalid},
		{"does not exist", filepath.Join(dir, "absent"), StatusInvalid},
		{"directory", dir, StatusInvalid},
		{"fifo is never opened", fifo, StatusInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestChecker().cosign(testCtx(t), tc.path)
			require.Equal(t, tc.want, c.Status, c.Detail)
			require.Equal(t, tc.path, c.Target)
			require.NotContains(t, c.Detail, "MII", "key material must never be reported")
		})
	}
}

func TestCosignKeyContentNeverReported(t *testing.T) {
	t.Parallel()
	path := writePEM(t, "ENCRYPTED SIGSTORE PRIVATE KEY", []byte("super-secret-key-material"))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	r := Run(context.Background(), Env{CosignKeyPath: path}, Options{})
	require.Equal(t, StatusOK, checkByName(t, r, CheckCosign).Status)
	dir := t.TempDir()
	require.NoError(t, r.WriteFiles(dir))
	js, err := os.ReadFile(filepath.Join(dir, ReportFileName))
	require.NoError(t, err)
	// The base64 body of the PEM block never appears.
	body := string(data[len("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"):])
	body = body[:20]
	require.NotContains(t, string(js), body)
	require.NotContains(t, r.Summary(), body)
}

func TestRedisReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply string
		want  Status
	}{
		{"pong", "+PONG\r\n", StatusOK},
		{"noauth", "-NOAUTH Authentication required.\r\n", StatusOK},
		{"other error", "-ERR unknown command\r\n", StatusInvalid},
		{"http server", "HTTP/1.1 400 Bad Request\r\n", StatusInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := fakeRedis(t, tc.reply)
			c := newTestChecker().redis(testCtx(t), "redis://"+addr+"/0")
			require.Equal(t, tc.want, c.Status, c.Detail)
			require.Equal(t, "redis://"+addr+"/0", c.Target)
		})
	}
}

func TestRedisFailures(t *testing.T) {
	t.Parallel()
	ck := newTestChecker()
	// Closed port.
	c := ck.redis(testCtx(t), "redis://"+closedAddr(t))
	require.Equal(t, StatusUnreachable, c.Status, c.Detail)
	// Accepts, never answers: cut by the context.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c = ck.redis(ctx, "redis://"+silentServer(t))
	require.Equal(t, StatusUnreachable, c.Status, c.Detail)
	require.Contains(t, c.Detail, "timeout")
	// Bare host:port is accepted.
	c = ck.redis(testCtx(t), fakeRedis(t, "+PONG\r\n"))
	require.Equal(t, StatusOK, c.Status, c.Detail)
	// Malformed.
	for _, bad := range []string{"http://x:6379", "redis://:6379", "redis://h:99999", "redis://h:port"} {
		require.Equal(t, StatusInvalid, ck.redis(testCtx(t), bad).Status, bad)
	}
}

func TestKafkaBrokers(t *testing.T) {
	t.Parallel()
	up := acceptAndClose(t)
	down := closedAddr(t)
	tests := []struct {
		name string
		raw  string
		want Status
	}{
		{"single", up, StatusOK},
		{"prefixed", "kafka://" + up, StatusOK},
		{"upper prefix", "KAFKA://" + up + "/", StatusOK},
		{"one of two", "kafka://" + down + ",kafka://" + up, StatusOK},
		{"with blanks and junk", " " + down + " , junk ," + up, StatusOK},
		{"all down", down, StatusUnreachable},
		{"malformed", "kafka-host", StatusInvalid},
		{"bad port", "kafka:notaport", StatusInvalid},
		{"only commas", ",,", StatusInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestChecker().kafka(testCtx(t), tc.raw)
			require.Equal(t, tc.want, c.Status, c.Detail)
		})
	}
}

func TestPrometheusAndNeuralFabric(t *testing.T) {
	t.Parallel()
	ck := newTestChecker()
	tests := []struct {
		name string
		run  func(context.Context, string) Check
		path string
		code int
		want Status
	}{
		{"prom ready", ck.prometheus, "/-/ready", 200, StatusOK},
		{"prom not ready", ck.prometheus, "/-/ready", 503, StatusUnreachable},
		{"prom wrong path", ck.prometheus, "/other", 200, StatusUnreachable},
		{"neural 200", ck.neuralFabric, "/health", 200, StatusOK},
		{"neural 204", ck.neuralFabric, "/health", 204, StatusOK},
		{"neural 500", ck.neuralFabric, "/health", 500, StatusUnreachable},
		{"neural 301", ck.neuralFabric, "/health", 301, StatusUnreachable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := statusServer(t, tc.path, tc.code)
			c := tc.run(testCtx(t), srv.URL)
			require.Equal(t, tc.want, c.Status, c.Detail)
		})
	}
	require.Equal(t, StatusInvalid, ck.prometheus(testCtx(t), "prom:9090").Status)
	require.Equal(t, StatusInvalid, ck.neuralFabric(testCtx(t), "nf").Status)
	require.Equal(t, StatusUnreachable, ck.neuralFabric(testCtx(t), "http://"+closedAddr(t)).Status)
}

func TestQuantumProvider(t *testing.T) {
	t.Parallel()
	up := statusServer(t, "", http.StatusOK)
	down := statusServer(t, "", http.StatusServiceUnavailable)
	tests := []struct {
		name string
		raw  string
		want Status
	}{
		{"sim", "sim", StatusSimulated},
		{"simulated", "SIMULATED", StatusSimulated},
		{"url up", up.URL, StatusOK},
		{"url 5xx", down.URL, StatusUnreachable},
		{"url closed", "http://" + closedAddr(t), StatusUnreachable},
		{"vendor name", "ibm-q", StatusInvalid},
		{"other scheme", "grpc://q:443", StatusInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestChecker().quantum(testCtx(t), tc.raw)
			require.Equal(t, tc.want, c.Status, c.Detail)
		})
	}
}

func TestPostgresCheck(t *testing.T) {
	t.Parallel()
	ck := newTestChecker()

	c := ck.postgres(testCtx(t), "postgres://fabric:s3cr3t@"+closedAddr(t)+"/fabric?sslmode=disable")
	require.Equal(t, StatusUnreachable, c.Status)
	require.Contains(t, c.Target, "postgres://fabric:"+Redacted+"@127.0.0.1:")
	require.NotContains(t, c.Target+c.Detail, "s3cr3t")

	c = ck.postgres(testCtx(t), "postgres://fabric:s3cr3t@127.0.0.1:notaport/db")
	require.Equal(t, StatusInvalid, c.Status)
	require.NotContains(t, c.Target+c.Detail, "s3cr3t")

	t.Run("local", func(t *testing.T) {
		t.Parallel()
		requirePostgres(t)
		c := newTestChecker().postgres(testCtx(t), localPostgresDSN)
		require.Equal(t, StatusOK, c.Status, c.Detail)
		require.Contains(t, c.Detail, "server version")
	})
}
