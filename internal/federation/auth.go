package federation

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Regions authenticate each other with the federation token (FEDERATION_TOKEN): the
// caller sends "authorization: Bearer <token>" on every call, the callee compares it in
// constant time and refuses a missing or wrong one with UNAUTHENTICATED, counted in
// fabric_federation_auth_refused_total{reason}. The token never reaches a log or an
// error. When TLS files are configured, the connection is also mutual TLS: both sides
// present a certificate signed by the federation's CA.

// MinTokenBytes is the shortest federation token accepted.
const MinTokenBytes = 16

// ErrNoToken: federation needs FEDERATION_TOKEN.
var ErrNoToken = fmt.Errorf("federation: FEDERATION_TOKEN is required (at least %d bytes)", MinTokenBytes)

// Authenticator checks the federation token on incoming calls.
type Authenticator struct {
	token   []byte
	refused *prometheus.CounterVec
}

// NewAuthenticator returns the server side of token authentication; refusals are
// counted on reg.
func NewAuthenticator(token string, reg prometheus.Registerer) (*Authenticator, error) {
	if len(token) < MinTokenBytes {
		return nil, ErrNoToken
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fabric_federation_auth_refused_total",
		Help: "Federation calls refused as UNAUTHENTICATED, by reason (missing, malformed, wrong token).",
	}, []string{"reason"})
	if err := reg.Register(refused); err != nil {
		return nil, fmt.Errorf("federation: register metrics: %w", err)
	}
	for _, r := range []string{"missing", "malformed", "wrong"} {
		refused.WithLabelValues(r)
	}
	return &Authenticator{token: []byte(token), refused: refused}, nil
}

// check authenticates ctx's metadata.
func (a *Authenticator) check(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		a.refused.WithLabelValues("missing").Inc()
		return status.Error(codes.Unauthenticated, "federation token required: authorization: Bearer <FEDERATION_TOKEN>")
	}
	got, ok := strings.CutPrefix(vals[0], "Bearer ")
	if len(vals) != 1 || !ok {
		a.refused.WithLabelValues("malformed").Inc()
		return status.Error(codes.Unauthenticated, "federation token: want exactly one \"authorization: Bearer <token>\"")
	}
	if subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
		a.refused.WithLabelValues("wrong").Inc()
		return status.Error(codes.Unauthenticated, "federation token refused")
	}
	return nil
}

// UnaryInterceptor refuses unauthenticated unary calls.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := a.check(ctx); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamInterceptor refuses unauthenticated streams.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := a.check(ss.Context()); err != nil {
			return err
		}
		return h(srv, ss)
	}
}

// bearer sends the token on every call.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// TLSFiles are the PEM files of mutual TLS; all empty means plain connections (the
// token alone authenticates).
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Enabled reports whether TLS is configured.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

func (f TLSFiles) load() (tls.Certificate, *x509.CertPool, error) {
	if f.CertFile == "" || f.KeyFile == "" || f.CAFile == "" {
		return tls.Certificate{}, nil, errors.New("federation.tls: cert_file, key_file and ca_file are all required")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("federation.tls: %w", err)
	}
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("federation.tls: ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("federation.tls: ca_file %s: no PEM certificate", f.CAFile)
	}
	return cert, pool, nil
}

// ServerCredentials are the transport credentials of a region's listener: mutual TLS
// (a client certificate signed by the CA is required) when configured, else plain.
func (f TLSFiles) ServerCredentials() (credentials.TransportCredentials, error) {
	if !f.Enabled() {
		return insecure.NewCredentials(), nil
	}
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}), nil
}

// DialOptions are how a coordinator dials regions: mutual TLS when configured (the
// region's certificate must be signed by the CA and name the endpoint's host), and the
// token on every call.
func (f TLSFiles) DialOptions(token string) ([]grpc.DialOption, error) {
	if len(token) < MinTokenBytes {
		return nil, ErrNoToken
	}
	if !f.Enabled() {
		return []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearer{token: token}),
		}, nil
	}
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			MinVersion:   tls.VersionTLS13,
		})),
		grpc.WithPerRPCCredentials(bearer{token: token, secure: true}),
	}, nil
}
