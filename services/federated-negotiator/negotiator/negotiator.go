// Package negotiator is the federated negotiator (I.4.3): multi-region negotiation to a quorum within the decision deadline.
// Its RPCs answer UNIMPLEMENTED (HTTP 501) until their issue lands; the contract,
// routing, authentication and access policy are already live.
package negotiator

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/server"
)

// Service implements negotiatorv1.NegotiatorServiceServer.
type Service struct {
	negotiatorv1.UnimplementedNegotiatorServiceServer
}

// New returns the service.
func New() *Service { return &Service{} }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string {
		return "/" + negotiatorv1.NegotiatorService_ServiceDesc.ServiceName + "/" + name
	}
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	return server.Service{
		Name:     fabric.Negotiator,
		Register: func(g *grpc.Server) { negotiatorv1.RegisterNegotiatorServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
			return negotiatorv1.RegisterNegotiatorServiceHandlerClient(ctx, mux, negotiatorv1.NewNegotiatorServiceClient(conn))
		},
		Policy: auth.Policy{
			m("StartNegotiation"):     {auth.RoleProposer, auth.RoleService},
			m("GetNegotiationStatus"): readers,
			m("WatchNegotiation"):     readers,
		},
	}
}

// StartNegotiation answers UNIMPLEMENTED until regional agents, quorum rules and counter-offers land.
func (s *Service) StartNegotiation(context.Context, *negotiatorv1.StartNegotiationRequest) (*negotiatorv1.StartNegotiationResponse, error) {
	return nil, server.Unimplemented(fabric.Negotiator, "StartNegotiation", "regional agents, quorum rules and counter-offers", 3)
}

// GetNegotiationStatus answers UNIMPLEMENTED until negotiation progress land.
func (s *Service) GetNegotiationStatus(context.Context, *negotiatorv1.GetNegotiationStatusRequest) (*negotiatorv1.GetNegotiationStatusResponse, error) {
	return nil, server.Unimplemented(fabric.Negotiator, "GetNegotiationStatus", "negotiation progress", 3)
}

// WatchNegotiation answers UNIMPLEMENTED until streamed negotiation progress land.
func (s *Service) WatchNegotiation(*negotiatorv1.WatchNegotiationRequest, grpc.ServerStreamingServer[negotiatorv1.WatchNegotiationResponse]) error {
	return server.Unimplemented(fabric.Negotiator, "WatchNegotiation", "streamed negotiation progress", 3)
}
