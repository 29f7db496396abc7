// Package telemetry sets up logs and traces the same way for every service: structured
// JSON logs that pass through the redaction handler (secrets and PII never reach the
// output) and carry the OpenTelemetry trace id, and a tracer provider with W3C
// propagation that exports over OTLP/gRPC when an endpoint is configured.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/redact"
)

// NewLogger returns a logger writing to w in the configured format and level. Every
// record passes through redact.NewHandler and gains trace_id/span_id when its context
// carries a span.
func NewLogger(cfg config.Telemetry, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(redact.NewHandler(traceHandler{h}))
}

// traceHandler adds the span context of the record's context.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// TraceID returns the current trace id (32 hex chars) or "".
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// Tracing is the process's tracer provider.
type Tracing struct {
	Provider *sdktrace.TracerProvider
}

// The tracer provider is process-global (the gRPC and HTTP instrumentation read the
// global one), so several fabrics in one process (tests, or embedding) share it: the
// first SetupTracing creates it, the last Shutdown stops it. Stopping it while another
// fabric still runs would silently turn that fabric's spans, and trace ids, off.
var (
	globalMu    sync.Mutex
	global      *Tracing
	globalUsers int
)

// Shutdown flushes and stops the exporter once the last user has shut down.
func (t *Tracing) Shutdown(ctx context.Context) error {
	globalMu.Lock()
	defer globalMu.Unlock()
	if globalUsers--; globalUsers > 0 {
		return nil
	}
	global = nil
	return t.Provider.Shutdown(ctx)
}

// SetupTracing returns the process's tracer provider, creating it and installing it and
// the W3C propagators globally on first use. Without an OTLP endpoint spans are sampled
// and carry ids but are not exported.
func SetupTracing(ctx context.Context, cfg config.Telemetry, process string) (*Tracing, error) {
	globalMu.Lock()
	defer globalMu.Unlock()
	if global != nil {
		globalUsers++
		return global, nil
	}
	t, err := newTracing(ctx, cfg, process)
	if err != nil {
		return nil, err
	}
	global, globalUsers = t, 1
	return t, nil
}

func newTracing(ctx context.Context, cfg config.Telemetry, process string) (*Tracing, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(process), semconv.ServiceVersion(fabric.Version), semconv.ServiceNamespace("decision-fabric")))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))}
	if cfg.OTLPEndpoint != "" {
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint), otlptracegrpc.WithInsecure())
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return &Tracing{Provider: tp}, nil
}
