package auth

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Policy maps a full gRPC method name ("/pkg.Service/Method") to the roles that may
// call it (any one suffices; admin may call what any tenant role may, never what only
// the service role may). A method missing from the policy is
// refused: every new RPC must be given a policy on purpose (fail closed).
type Policy map[string][]string

// Merge adds other's entries to p.
func (p Policy) Merge(other Policy) {
	for k, v := range other {
		p[k] = v
	}
}

// public methods need no token: health checks and reflection.
func public(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// authorize authenticates the bearer token in ctx and checks the method's policy.
func authorize(ctx context.Context, v *Verifier, p Policy, method string) (context.Context, error) {
	if public(method) {
		return ctx, nil
	}
	raw, err := bearer(ctx)
	if err != nil {
		return nil, err
	}
	principal, err := v.Verify(raw)
	if err != nil {
		// The reason (expired, wrong audience...) helps the caller; the token never appears.
		return nil, status.Errorf(codes.Unauthenticated, "%v", err)
	}
	roles, ok := p[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "no access policy for %s", method)
	}
	if !principal.HasAnyRole(roles...) {
		return nil, status.Errorf(codes.PermissionDenied, "%s needs one of the roles %s", method, strings.Join(roles, ", "))
	}
	return WithPrincipal(ctx, principal), nil
}

// bearer extracts the token from the "authorization" metadata (the REST gateway forwards
// the HTTP Authorization header there).
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", status.Error(codes.Unauthenticated, "missing bearer token: send \"Authorization: Bearer <jwt>\"")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", status.Error(codes.Unauthenticated, "malformed authorization header: want \"Bearer <jwt>\"")
	}
	return strings.TrimSpace(token), nil
}

// UnaryServerInterceptor authenticates and authorises unary calls.
func UnaryServerInterceptor(v *Verifier, p Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := authorize(ctx, v, p, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamServerInterceptor authenticates and authorises streaming calls.
func StreamServerInterceptor(v *Verifier, p Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, err := authorize(ss.Context(), v, p, info.FullMethod)
		if err != nil {
			return err
		}
		return h(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// ForwardToken returns ctx with the caller's bearer token as outgoing metadata, so a
// service calling another acts for the same tenant and subject.
func ForwardToken(ctx context.Context) context.Context {
	p := FromContext(ctx)
	if p == nil || p.Token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+p.Token)
}
