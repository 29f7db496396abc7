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
		admit := c.Admit
		if longPoll(req) {
			admit = c.AdmitStream // it mostly waits: a request slot would idle for its length
		}
		release, err := admit(ctx, auth.FromContext(ctx))
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

// longPoll reports whether req asks to wait for a change (a wait_ms field set, as in
// GetProposal): such a call is counted like a stream, not against the request slots,
// which a few clients waiting up to 30 s each would otherwise hold idle.
func longPoll(req any) bool {
	w, ok := req.(interface{ GetWaitMs() uint32 })
	return ok && w.GetWaitMs() > 0
}
