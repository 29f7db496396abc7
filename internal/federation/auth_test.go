package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
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

// pki writes a CA and two leaf certificates signed by it (server for 127.0.0.1,
// client), and a leaf of another CA, into dir.
type pki struct{ dir string }

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func newCA(t *testing.T, p pki, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	require.NoError(t, err)
	writePEM(t, p.path(name+".crt"), "CERTIFICATE", der)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

func newLeaf(t *testing.T, p pki, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	writePEM(t, p.path(name+".crt"), "CERTIFICATE", der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	writePEM(t, p.path(name+".key"), "PRIVATE KEY", kder)
}

func TestMutualTLS(t *testing.T) {
	p := pki{t.TempDir()}
	ca, caKey := newCA(t, p, "ca")
	newLeaf(t, p, "server", ca, caKey, 2)
	newLeaf(t, p, "client", ca, caKey, 3)
	other, otherKey := newCA(t, p, "other-ca")
	newLeaf(t, p, "stranger", other, otherKey, 4)

	server := TLSFiles{CertFile: p.path("server.crt"), KeyFile: p.path("server.key"), CAFile: p.path("ca.crt")}
	addr, _ := serve(t, server, prometheus.NewRegistry())

	client := TLSFiles{CertFile: p.path("client.crt"), KeyFile: p.path("client.key"), CAFile: p.path("ca.crt")}
	opts, err := client.DialOptions(testToken)
	require.NoError(t, err)
	require.NoError(t, check(t, addr, opts...))

	// A client certificate of another CA is refused by the handshake.
	stranger := TLSFiles{CertFile: p.path("stranger.crt"), KeyFile: p.path("stranger.key"), CAFile: p.path("ca.crt")}
	opts, err = stranger.DialOptions(testToken)
	require.NoError(t, err)
	require.Equal(t, codes.Unavailable, status.Code(check(t, addr, opts...)))

	// A plain client cannot talk to the TLS listener.
	plain, err := TLSFiles{}.DialOptions(testToken)
	require.NoError(t, err)
	require.Equal(t, codes.Unavailable, status.Code(check(t, addr, plain...)))

	_, err = TLSFiles{CertFile: p.path("client.crt")}.DialOptions(testToken)
	require.ErrorContains(t, err, "all required")
}
