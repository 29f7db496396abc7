// Package auditor is the decision auditor (I.4.6): the append-only, tamper-evident audit log.
// Its RPCs answer UNIMPLEMENTED (HTTP 501) until their issue lands; the contract,
// routing, authentication and access policy are already live.
package auditor

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/server"
)

// Service implements auditorv1.AuditorServiceServer.
type Service struct {
	auditorv1.UnimplementedAuditorServiceServer
}

// New returns the service.
func New() *Service { return &Service{} }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + auditorv1.AuditorService_ServiceDesc.ServiceName + "/" + name }
	return server.Service{
		Name:     fabric.Auditor,
		Register: func(g *grpc.Server) { auditorv1.RegisterAuditorServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
			return auditorv1.RegisterAuditorServiceHandlerClient(ctx, mux, auditorv1.NewAuditorServiceClient(conn))
		},
		Policy: auth.Policy{
			m("GetAuditTrail"):  {auth.RoleAuditor, auth.RoleProposer, auth.RoleApprover},
			m("RecordSnapshot"): {auth.RoleService, auth.RoleProposer},
			m("AppendEntry"):    {auth.RoleService},
		},
	}
}

// GetAuditTrail answers UNIMPLEMENTED until the audit log with inclusion proofs land.
func (s *Service) GetAuditTrail(context.Context, *auditorv1.GetAuditTrailRequest) (*auditorv1.GetAuditTrailResponse, error) {
	return nil, server.Unimplemented(fabric.Auditor, "GetAuditTrail", "the audit log with inclusion proofs", 4)
}

// RecordSnapshot answers UNIMPLEMENTED until snapshot hash references in the audit log land.
func (s *Service) RecordSnapshot(context.Context, *auditorv1.RecordSnapshotRequest) (*auditorv1.RecordSnapshotResponse, error) {
	return nil, server.Unimplemented(fabric.Auditor, "RecordSnapshot", "snapshot hash references in the audit log", 4)
}

// AppendEntry answers UNIMPLEMENTED until the append-only audit log land.
func (s *Service) AppendEntry(context.Context, *auditorv1.AppendEntryRequest) (*auditorv1.AppendEntryResponse, error) {
	return nil, server.Unimplemented(fabric.Auditor, "AppendEntry", "the append-only audit log", 4)
}
