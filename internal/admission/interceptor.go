package admission

import (
	"context"

	"google.golang.org/grpc"

	"github.com/decision-fabric/fabric/internal/auth"
)

// UnaryServerInterceptor admits each call (see Controller.Admit) and holds its slot
// until the handler returns. It must run after authentication, which puts the
// principal (and so the tenant) in the context.
func (c *Controller) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		release, err := c.Admit(ctx, auth.FromContext(ctx))
		if err != nil {
			if md := retryAfterMD(err); md != nil {
				_ = grpc.SetHeader(ctx, md)
			}
			return nil, err
		}
		defer release()
		return h(ctx, req)
	}
}

// StreamServerInterceptor admits each stream (see Controller.AdmitStream) for its
// whole life. It must run after authentication.
func (c *Controller) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		release, err := c.AdmitStream(ss.Context(), auth.FromContext(ss.Context()))
		if err != nil {
			if md := retryAfterMD(err); md != nil {
				_ = ss.SetHeader(md)
			}
			return err
		}
		defer release()
		return h(srv, ss)
	}
}
