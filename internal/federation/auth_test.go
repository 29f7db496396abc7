package federation

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/federation/fedtest"
)

const testToken = "federation-token-0123456789"

// serve starts a gRPC server with the health service behind the token check and
// files' transport credentials, on an ephemeral loopback port.
func serve(t *testing.T, files TLSFiles, reg prometheus.Registerer) (string, *Authenticator) {
	t.Helper()
	authn, err := NewAuthenticator(testToken, reg)
	require.NoError(t, err)
	creds, err := files.ServerCredentials()
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := grpc.NewServer(grpc.Creds(creds), grpc.ChainUnaryInterceptor(authn.UnaryInterceptor()))
	healthpb.RegisterHealthServer(g, health.NewServer())
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String(), authn
}

func check(t *testing.T, addr string, opts ...grpc.DialOption) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestTokenAuthentication(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr, authn := serve(t, TLSFiles{}, reg)

	good, err := TLSFiles{}.DialOptions(testToken)
	require.NoError(t, err)
	require.NoError(t, check(t, addr, good...))

	wrong, err := TLSFiles{}.DialOptions("another-token-0123456789")
	require.NoError(t, err)
	err = check(t, addr, wrong...)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.NotContains(t, err.Error(), testToken)
	require.NotContains(t, err.Error(), "another-token")
	require.InDelta(t, 1, testutil.ToFloat64(authn.refused.WithLabelValues("wrong")), 0)

	none := good[:1] // the transport alone, no token
	require.Equal(t, codes.Unauthenticated, status.Code(check(t, addr, none...)))
	require.InDelta(t, 1, testutil.ToFloat64(authn.refused.WithLabelValues("missing")), 0)

	_, err = TLSFiles{}.DialOptions("short")
	require.ErrorIs(t, err, ErrNoToken)
	_, err = NewAuthenticator("", prometheus.NewRegistry())
	require.ErrorIs(t, err, ErrNoToken)
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := fedtest.NewCA(t, dir, "ca")
	serverCrt, serverKey := ca.Leaf(t, "server")
	clientCrt, clientKey := ca.Leaf(t, "client")
	strangerCrt, strangerKey := fedtest.NewCA(t, dir, "other-ca").Leaf(t, "stranger")

	server := TLSFiles{CertFile: serverCrt, KeyFile: serverKey, CAFile: ca.CertFile()}
	addr, _ := serve(t, server, prometheus.NewRegistry())

	client := TLSFiles{CertFile: clientCrt, KeyFile: clientKey, CAFile: ca.CertFile()}
	opts, err := client.DialOptions(testToken)
	require.NoError(t, err)
	require.NoError(t, check(t, addr, opts...))

	// A client certificate of another CA is refused by the handshake.
	stranger := TLSFiles{CertFile: strangerCrt, KeyFile: strangerKey, CAFile: ca.CertFile()}
	opts, err = stranger.DialOptions(testToken)
	require.NoError(t, err)
	require.Equal(t, codes.Unavailable, status.Code(check(t, addr, opts...)))

	// A plain client cannot talk to the TLS listener.
	plain, err := TLSFiles{}.DialOptions(testToken)
	require.NoError(t, err)
	require.Equal(t, codes.Unavailable, status.Code(check(t, addr, plain...)))

	_, err = TLSFiles{CertFile: clientCrt}.DialOptions(testToken)
	require.ErrorContains(t, err, "all required")
}
