// Package hil is the human-in-loop gateway (I.4.5): approvals with MFA and notifications.
// Its RPCs answer UNIMPLEMENTED (HTTP 501) until their issue lands; the contract,
// routing, authentication and access policy are already live.
package hil

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/server"
)

// Service implements hilv1.HILServiceServer.
type Service struct {
	hilv1.UnimplementedHILServiceServer
}

// New returns the service.
func New() *Service { return &Service{} }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + hilv1.HILService_ServiceDesc.ServiceName + "/" + name }
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	return server.Service{
		Name:     fabric.HIL,
		Register: func(g grpc.ServiceRegistrar) { hilv1.RegisterHILServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return hilv1.RegisterHILServiceHandlerClient(ctx, mux, hilv1.NewHILServiceClient(conn))
		},
		Policy: auth.Policy{
			m("Approve"):         {auth.RoleApprover},
			m("ListPending"):     readers,
			m("RequestApproval"): {auth.RoleService},
		},
	}
}

// Approve answers UNIMPLEMENTED until approvals with MFA proof land.
func (s *Service) Approve(context.Context, *hilv1.ApproveRequest) (*hilv1.ApproveResponse, error) {
	return nil, server.Unimplemented(fabric.HIL, "Approve", "approvals with MFA proof", 0)
}

// ListPending answers UNIMPLEMENTED until the pending-approval queue land.
func (s *Service) ListPending(context.Context, *hilv1.ListPendingRequest) (*hilv1.ListPendingResponse, error) {
	return nil, server.Unimplemented(fabric.HIL, "ListPending", "the pending-approval queue", 0)
}

// RequestApproval answers UNIMPLEMENTED until approval requests and notifications land.
func (s *Service) RequestApproval(context.Context, *hilv1.RequestApprovalRequest) (*hilv1.RequestApprovalResponse, error) {
	return nil, server.Unimplemented(fabric.HIL, "RequestApproval", "approval requests and notifications", 0)
}
