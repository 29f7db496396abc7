// Package server is the one platform every service runs on: a gRPC server with the
// fabric's interceptor chain, the grpc-gateway REST API, gRPC health and reflection,
// GET /health, GET /metrics and graceful shutdown.
//
// REST requests are served by gateway handlers registered against the service's
// in-process connection (Server.Local), never against the implementation directly:
// that way REST passes through exactly the same interceptors (auth, tenancy, redacting
// logs, metrics, admission, validation) as gRPC, without a socket. Peer services in the
// same process call through it too; the gRPC listener serves everyone else.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/decision-fabric/fabric/internal/admission"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
)

// Service is what a module hands the platform.
type Service struct {
	// Name is the service name (fabric.Coordinator, ...).
	Name string
	// Register registers the gRPC implementation(s) on r (the gRPC server and the
	// in-process connection).
	Register func(r grpc.ServiceRegistrar)
	// Gateway registers the REST handlers against conn (this service's in-process
	// connection).
	Gateway func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error
	// Policy lists the roles allowed per method; methods not listed are refused.
	Policy auth.Policy
	// Validators check requests before handlers run.
	Validators Validators
	// HTTP adds plain HTTP routes (pages, downloads) beside the gateway; optional.
	HTTP func(mux *http.ServeMux)
	// Close releases the service's resources after the servers stopped; optional.
	Close func() error
	// Checks adds the service's own entries to the checks of GET /health; optional.
	// They inform: the process-wide report alone decides the status.
	Checks func(ctx context.Context) map[string]string
}

// HealthReport is the body of GET /health.
type HealthReport struct {
	Service          string            `json:"service"`
	Version          string            `json:"version"`
	Status           string            `json:"status"` // "ok" or "degraded"
	SimulationMode   bool              `json:"simulation_mode"`
	PrecheckDecision string            `json:"precheck_decision"`
	Store            string            `json:"store"`
	Checks           map[string]string `json:"checks,omitempty"`
	// Reasons say why the status is "degraded" by load (the service is refusing
	// requests for overload): it still serves, so the answer stays 200.
	Reasons []string `json:"reasons,omitempty"`
}

// HealthFunc fills the process-wide parts of a health report.
type HealthFunc func(ctx context.Context) HealthReport

// Options are the platform's settings for one service.
type Options struct {
	Listen          config.Listen
	Logger          *slog.Logger
	Verifier        *auth.Verifier
	MaxRequestBytes int64
	ShutdownTimeout time.Duration
	Health          HealthFunc
	// Admission bounds the service's concurrent and queued requests and each tenant's
	// share; the zero value means config.DefaultAdmission().
	Admission config.Admission
	// Registry receives the service's metrics; a fresh one is created when nil.
	Registry *prometheus.Registry
	// SharedQuota, when set (REDIS_URL), keeps the tenants' quotas in Redis, shared
	// with the service's other replicas; nil keeps them in this process.
	SharedQuota *admission.RedisStore
}

// Server runs one service.
type Server struct {
	svc      Service
	opts     Options
	log      *slog.Logger
	grpc     *grpc.Server
	http     *http.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	local    *local
	health   *health.Server
	adm      *admission.Controller
	stopOnce sync.Once
}

// New binds both listeners (so a port clash fails at start, naming the address) and wires
// the service. Serve must be called to accept connections.
func New(ctx context.Context, svc Service, opts Options) (*Server, error) {
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	s := &Server{svc: svc, opts: opts, log: opts.Logger.With("service", svc.Name)}

	metrics := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}),
	))
	if err := opts.Registry.Register(metrics); err != nil {
		return nil, fmt.Errorf("server: register metrics: %w", err)
	}
	if opts.Admission == (config.Admission{}) {
		opts.Admission = config.DefaultAdmission()
	}
	var err error
	var admOpts []admission.Option
	if opts.SharedQuota != nil {
		admOpts = append(admOpts, admission.WithQuota(opts.SharedQuota.Quota(svc.Name, opts.Admission.Tenant)))
	}
	if s.adm, err = admission.New(opts.Admission, opts.Registry, admOpts...); err != nil {
		return nil, fmt.Errorf("server: %s: %w", svc.Name, err)
	}
	unary, stream := chain(s.log, metrics, opts.Verifier, svc.Policy, s.adm, svc.Validators)
	s.grpc = grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(int(opts.MaxRequestBytes)),
	)
	s.local = newLocal(unary, stream, int(opts.MaxRequestBytes))
	svc.Register(registrars{s.grpc, s.local.reg})
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	metrics.InitializeMetrics(s.grpc)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}

	if s.grpcLis, err = net.Listen("tcp", opts.Listen.GRPCAddr); err != nil {
		return nil, fmt.Errorf("server: %s: listen grpc %s: %w", svc.Name, opts.Listen.GRPCAddr, err)
	}
	if s.httpLis, err = net.Listen("tcp", opts.Listen.HTTPAddr); err != nil {
		s.grpcLis.Close()
		return nil, fmt.Errorf("server: %s: listen http %s: %w", svc.Name, opts.Listen.HTTPAddr, err)
	}

	// The gateway calls the service in-process, through the same chain.
	gw := NewGatewayMux()
	if svc.Gateway != nil {
		if err := svc.Gateway(ctx, gw, localConn{s.local}); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("server: %s: register gateway: %w", svc.Name, err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}))
	if svc.HTTP != nil {
		svc.HTTP(mux)
	}
	mux.Handle("/", shedWhenFull(limitBody(gw, opts.MaxRequestBytes), s.adm))
	s.http = &http.Server{
		Handler:           otelhttp.NewHandler(mux, svc.Name, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path })),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	return s, nil
}

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound REST address.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// Local is the service's in-process connection: a client connection whose calls run
// the service's handlers in this process through the same interceptor chain as calls
// on the gRPC listener (see local). It refuses calls once the server stops.
func (s *Server) Local() grpc.ClientConnInterface { return localConn{s.local} }

// Policy is a copy of the service's access policy (method → roles), e.g. for tests
// that try every method with every role.
func (s *Server) Policy() auth.Policy { return maps.Clone(s.svc.Policy) }

// Serve accepts connections until ctx is cancelled, then shuts down gracefully within
// the shutdown timeout: health turns NOT_SERVING, REST drains, gRPC drains.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		// A Stop that came first (before this goroutine ran) is not a failure.
		if err := s.grpc.Serve(s.grpcLis); !errors.Is(err, grpc.ErrServerStopped) {
			errc <- err
			return
		}
		errc <- nil
	}()
	go func() {
		if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	s.log.InfoContext(ctx, "listening", "rest", s.HTTPAddr(), "grpc", s.GRPCAddr())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if err != nil { // nil: Stop was called directly
			err = fmt.Errorf("server: %s: %w", s.svc.Name, err)
		}
	}
	s.Stop()
	return err
}

// Stop shuts the servers down gracefully (idempotent).
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.health.Shutdown()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
		defer cancel()
		_ = s.http.Shutdown(ctx)
		// In-process calls from peers in this process drain like the listener's.
		s.local.close(ctx)
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.grpc.Stop()
		}
		if s.svc.Close != nil {
			if err := s.svc.Close(); err != nil {
				s.log.Error("close", "error", err)
			}
		}
	})
}

func (s *Server) closeListeners() {
	s.grpcLis.Close()
	s.httpLis.Close()
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	rep := HealthReport{Status: "ok"}
	if s.opts.Health != nil {
		rep = s.opts.Health(r.Context())
	}
	rep.Service = s.svc.Name
	rep.Version = fabric.Version
	if s.svc.Checks != nil {
		for k, v := range s.svc.Checks(r.Context()) {
			if rep.Checks == nil {
				rep.Checks = map[string]string{}
			}
			rep.Checks[k] = v
		}
	}
	// Overload degrades without failing the check: the service answers (fast) and a
	// load balancer that took it out would only move the load to its peers.
	code := http.StatusOK
	if rep.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	for k, v := range s.adm.Components() {
		if rep.Checks == nil {
			rep.Checks = map[string]string{}
		}
		rep.Checks[k] = v
	}
	// A shared quota backend that is down degrades without failing either: the
	// quotas are kept per replica meanwhile.
	if reasons := s.adm.Health(); len(reasons) > 0 {
		rep.Status = "degraded"
		rep.Reasons = append(rep.Reasons, reasons...)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

// limitBody refuses bodies larger than max: 413 when Content-Length says so up front,
// and a read error (surfacing as 400) when a chunked body runs over.
func limitBody(next http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}

// headerMatcher forwards the HTTP headers the fabric reads as gRPC metadata, besides
// the gateway's defaults (Authorization is always forwarded by the gateway).
func headerMatcher(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "idempotency-key":
		return "idempotency-key", true
	}
	return runtime.DefaultHeaderMatcher(key)
}
