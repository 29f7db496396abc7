package server

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/admission"
	"github.com/decision-fabric/fabric/internal/auth"
)

// chain builds the unary and stream interceptor chains, outermost first. The order is
// the contract; each line says why its interceptor sits where it does.
func chain(log *slog.Logger, metrics *grpcprom.ServerMetrics, verifier *auth.Verifier, policy auth.Policy, adm *admission.Controller, validators Validators) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor) {
	onPanic := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		// The panic value and stack go to the log (redacted); the caller sees a generic error.
		log.ErrorContext(ctx, "panic in handler", "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	unary := []grpc.UnaryServerInterceptor{
		// 1. Recovery is outermost so a panic anywhere below becomes INTERNAL, not a crash.
		recovery.UnaryServerInterceptor(onPanic),
		// 2. Error masking: a handler error that is not a gRPC status (a driver error, say)
		//    could carry internals; it is logged and replaced by INTERNAL.
		maskErrorsUnary(log),
		// 3. Metrics count every call, including those refused by auth or validation.
		metrics.UnaryServerInterceptor(),
		// 4. Logging sees the final code of every call; its output passes the redactor.
		logging.UnaryServerInterceptor(slogAdapter(log), logOpts...),
		// 5. Auth (JWT tenancy, P5) before any handler code or validation reads the request.
		auth.UnaryServerInterceptor(verifier, policy),
		// 6. Admission right after auth, which names the tenant its quota is counted
		//    against, and before any work: beyond the service's capacity or the tenant's
		//    quota a call is refused here (503/429) at the cost of a map lookup.
		adm.UnaryServerInterceptor(),
		// 7. Limits on open JSON (depth, values, string size) before any validator or
		//    handler walks it, for every method: the same for gRPC and REST.
		jsonLimitsUnary(),
		// 8. Validation innermost: only authenticated, admitted requests are parsed further.
		validators.unary(),
	}
	stream := []grpc.StreamServerInterceptor{
		recovery.StreamServerInterceptor(onPanic),
		maskErrorsStream(log),
		metrics.StreamServerInterceptor(),
		logging.StreamServerInterceptor(slogAdapter(log), logOpts...),
		auth.StreamServerInterceptor(verifier, policy),
		adm.StreamServerInterceptor(),
		jsonLimitsStream(),
		validators.stream(),
	}
	return unary, stream
}

func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, clipFields(fields)...)
	})
}

// mask turns any non-status error into INTERNAL after logging it; context errors keep
// their natural codes. A status message longer than MaxMessageRunes is cut.
func mask(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return clipStatus(err)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	log.ErrorContext(ctx, "unhandled error", "method", method, "error", err)
	return status.Error(codes.Internal, "internal error")
}

func maskErrorsUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		return resp, mask(ctx, log, info.FullMethod, err)
	}
}

func maskErrorsStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return mask(ss.Context(), log, info.FullMethod, h(srv, ss))
	}
}

// Validators maps a full method name to a check of its request. A failing check should
// return an INVALID_ARGUMENT status naming the field; a plain error is wrapped as one.
type Validators map[string]func(req any) error

func (v Validators) check(method string, req any) error {
	f, ok := v[method]
	if !ok {
		return nil
	}
	if err := f(req); err != nil {
		if _, isStatus := status.FromError(err); isStatus {
			return err
		}
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

func (v Validators) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := v.check(info.FullMethod, req); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

func (v Validators) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if _, ok := v[info.FullMethod]; !ok {
			return h(srv, ss)
		}
		return h(srv, &validatingStream{ServerStream: ss, method: info.FullMethod, v: v})
	}
}

type validatingStream struct {
	grpc.ServerStream
	method string
	v      Validators
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.v.check(s.method, m)
}
