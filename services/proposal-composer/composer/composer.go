// Package composer is the proposal composer (I.4.2): it turns signals into signed manifests from templates.
// Its RPCs answer UNIMPLEMENTED (HTTP 501) until their issue lands; the contract,
// routing, authentication and access policy are already live.
package composer

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	composerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/composer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/server"
)

// Service implements composerv1.ComposerServiceServer.
type Service struct {
	composerv1.UnimplementedComposerServiceServer
}

// New returns the service.
func New() *Service { return &Service{} }

// Definition is what the platform serves.
func (s *Service) Definition() server.Service {
	m := func(name string) string { return "/" + composerv1.ComposerService_ServiceDesc.ServiceName + "/" + name }
	readers := []string{auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor, auth.RoleService}
	return server.Service{
		Name:     fabric.Composer,
		Register: func(g *grpc.Server) { composerv1.RegisterComposerServiceServer(g, s) },
		Gateway: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
			return composerv1.RegisterComposerServiceHandlerClient(ctx, mux, composerv1.NewComposerServiceClient(conn))
		},
		Policy: auth.Policy{
			m("Compose"):       {auth.RoleProposer, auth.RoleService},
			m("ListTemplates"): readers,
		},
	}
}

// Compose answers UNIMPLEMENTED until template composition, model suggestions, P1 redaction and cosign signing land.
func (s *Service) Compose(context.Context, *composerv1.ComposeRequest) (*composerv1.ComposeResponse, error) {
	return nil, server.Unimplemented(fabric.Composer, "Compose", "template composition, model suggestions, P1 redaction and cosign signing", 3)
}

// ListTemplates answers UNIMPLEMENTED until templates.yaml land.
func (s *Service) ListTemplates(context.Context, *composerv1.ListTemplatesRequest) (*composerv1.ListTemplatesResponse, error) {
	return nil, server.Unimplemented(fabric.Composer, "ListTemplates", "templates.yaml", 3)
}
