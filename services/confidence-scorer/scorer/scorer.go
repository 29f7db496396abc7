// Package scorer is the confidence scorer (I.4.4): confidence, risk and cost with a readable explanation.
// Its RPCs answer UNIMPLEMENTED (HTTP 501) until their issue lands; the contract,
// routing, authentication and access policy are already live.
package scorer

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/server"
)

// Service implements scorerv1.ScorerServiceServer.
type Service struct {
	scorerv1.UnimplementedScorerServiceServer
}

// New returns the service.
func New() *Service { return &Service{} }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + scorerv1.ScorerService_ServiceDesc.ServiceName + "/" + name }
	return server.Service{
		Name:     fabric.Scorer,
		Register: func(g *grpc.Server) { scorerv1.RegisterScorerServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
			return scorerv1.RegisterScorerServiceHandlerClient(ctx, mux, scorerv1.NewScorerServiceClient(conn))
		},
		Policy: auth.Policy{
			m("Score"): {auth.RoleProposer, auth.RoleService},
		},
	}
}

// Score answers UNIMPLEMENTED until confidence, risk and cost scoring land.
func (s *Service) Score(context.Context, *scorerv1.ScoreRequest) (*scorerv1.ScoreResponse, error) {
	return nil, server.Unimplemented(fabric.Scorer, "Score", "confidence, risk and cost scoring", 3)
}
