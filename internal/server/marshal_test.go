package server

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
)

// TestSignedDocumentsAsSigned: a manifest anywhere in a response is marshaled as its
// canonical form is made (no unpopulated fields), everything else as before.
func TestSignedDocumentsAsSigned(t *testing.T) {
	t.Parallel()
	m := &typesv1.Manifest{Action: "scale", Target: "x", Parameters: &structpb.Struct{Fields: map[string]*structpb.Value{
		"regions": structpb.NewListValue(&structpb.ListValue{}), "none": structpb.NewNullValue(), "s": structpb.NewStringValue(""),
	}}}
	want, err := canonical.Proto(m)
	require.NoError(t, err)
	p := &coordinatorv1.Proposal{Id: "01J", Manifest: m, AgreedManifest: m}
	mar := fabricJSON{JSONPb: gatewayJSONPb()} // as NewGatewayMux installs it

	for name, v := range map[string]proto.Message{
		"get":  &coordinatorv1.GetProposalResponse{Proposal: p},
		"list": &coordinatorv1.ListProposalsResponse{Proposals: []*coordinatorv1.Proposal{p, p}},
	} {
		raw, err := mar.Marshal(v)
		require.NoError(t, err, name)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(raw, &doc), name)
		var ps []any
		if l, ok := doc["proposals"]; ok {
			ps = l.([]any)
		} else {
			ps = []any{doc["proposal"]}
		}
		for _, p := range ps {
			pm := p.(map[string]any)
			require.Contains(t, pm, "post_state_sha256", "%s: other messages keep their unpopulated fields", name)
			for _, field := range []string{"manifest", "agreed_manifest"} {
				b, err := json.Marshal(pm[field])
				require.NoError(t, err)
				got, err := canonical.JSON(b)
				require.NoError(t, err)
				require.Equal(t, string(want), string(got), "%s.%s", name, field)
			}
		}
		// The response still decodes as the message it is.
		require.NoError(t, protojson.Unmarshal(raw, v.ProtoReflect().New().Interface()), name)
	}
}
