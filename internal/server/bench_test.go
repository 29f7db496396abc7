package server

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
)

// benchProposal is a proposal response as GET /proposals/{id} returns it, with a
// manifest of 50 parameters.
func benchProposal(b *testing.B) *coordinatorv1.GetProposalResponse {
	b.Helper()
	p := &coordinatorv1.Proposal{}
	body := `{"id":"01JD3Q0Z9M8K7B6V5C4X3W2Y1T","tenant_id":"t1","manifest":{"action":"scale","target":"serviceX","regions":["eu-west","us-east"],"parameters":{`
	for i := 0; i < 50; i++ {
		if i > 0 {
			body += ","
		}
		body += `"p` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":{"v":[1,2,3],"s":"text"}`
	}
	body += `}},"manifest_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}`
	if err := protojson.Unmarshal([]byte(body), p); err != nil {
		b.Fatal(err)
	}
	return &coordinatorv1.GetProposalResponse{Proposal: p}
}

// BenchmarkCheckJSONLimits is the limits interceptor's cost on such a request.
func BenchmarkCheckJSONLimits(b *testing.B) {
	req := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: benchProposal(b).GetProposal().GetManifest()}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckJSONLimits(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalProposal compares the gateway's marshaler (manifest as signed) with
// plain JSONPb on the same response.
func BenchmarkMarshalProposal(b *testing.B) {
	resp := benchProposal(b)
	for name, m := range map[string]interface{ Marshal(any) ([]byte, error) }{
		"fabric": fabricJSON{gatewayJSONPb()},
		"jsonpb": gatewayJSONPb(),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInprocVsLoopback is one unary call through the whole interceptor chain
// (token check, admission, validation, metrics, logging), made over the in-process
// connection and over a loopback gRPC connection to the same server, in the same run.
func BenchmarkInprocVsLoopback(b *testing.B) {
	h := inprocStart(b)
	h.logs.discard = true
	loopback, err := grpc.NewClient(h.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer loopback.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+h.token(b, "t1", auth.RoleProposer))
	for _, path := range []struct {
		name string
		conn grpc.ClientConnInterface
	}{{"loopback", loopback}, {"in-process", h.srv.Local()}} {
		client := negotiatorv1.NewNegotiatorServiceClient(path.conn)
		b.Run(path.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.GetNegotiationStatus(ctx, &negotiatorv1.GetNegotiationStatusRequest{Id: "n1"}); err != nil {
					b.Fatal(err)
				}
				h.neg.takeSeen()
			}
		})
	}
}
