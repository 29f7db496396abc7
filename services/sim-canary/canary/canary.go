// Package canary is the simulation and canary runner (I.4.7): full-chain dry runs, replays and canary rollouts.
// Its RPCs answer UNIMPLEMENTED (HTTP 501) until their issue lands; the contract,
// routing, authentication and access policy are already live.
package canary

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/server"
)

// Service implements canaryv1.CanaryServiceServer.
type Service struct {
	canaryv1.UnimplementedCanaryServiceServer
	replay *ReplayDeps // set by WithReplay (replay.go)
}

// New returns the service.
func New() *Service { return &Service{} }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + canaryv1.CanaryService_ServiceDesc.ServiceName + "/" + name }
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	return server.Service{
		Name:     fabric.Canary,
		Register: func(g grpc.ServiceRegistrar) { canaryv1.RegisterCanaryServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error {
			return canaryv1.RegisterCanaryServiceHandlerClient(ctx, mux, canaryv1.NewCanaryServiceClient(conn))
		},
		Policy: auth.Policy{
			m("RunCanary"):       {auth.RoleProposer, auth.RoleService},
			m("GetCanaryResult"): readers,
			m("Replay"):          {auth.RoleAuditor, auth.RoleAdmin},
		},
	}
}

// RunCanary answers UNIMPLEMENTED until full-chain dry runs and canary rollouts land.
func (s *Service) RunCanary(context.Context, *canaryv1.RunCanaryRequest) (*canaryv1.RunCanaryResponse, error) {
	return nil, server.Unimplemented(fabric.Canary, "RunCanary", "full-chain dry runs and canary rollouts", 0)
}

// GetCanaryResult answers UNIMPLEMENTED until canary scorecards land.
func (s *Service) GetCanaryResult(context.Context, *canaryv1.GetCanaryResultRequest) (*canaryv1.GetCanaryResultResponse, error) {
	return nil, server.Unimplemented(fabric.Canary, "GetCanaryResult", "canary scorecards", 0)
}
