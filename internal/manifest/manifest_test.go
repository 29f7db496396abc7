package manifest

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
)

// The grammars as the services wrote them before they moved here: the functions
// must accept exactly what these accept.
var (
	manifestReAction     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	manifestReULID       = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
	manifestReProposalID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)
)

func TestManifestGrammarsMatchTheirPatterns(t *testing.T) {
	long := func(c string, n int) string {
		out := ""
		for range n {
			out += c
		}
		return out
	}
	cases := []string{"", "a", "scale", "Scale", "scale-up_2", "-scale", "_a", "9", "a b", "a.b", "a:b", "é",
		long("a", 64), long("a", 65), long("a", 128), long("a", 129),
		"01ARZ3NDEKTSV4RRFFQ69G5FAV", "01arz3ndektsv4rrffq69g5fav", "01ARZ3NDEKTSV4RRFFQ69G5FAI", "01ARZ3NDEKTSV4RRFFQ69G5FA",
		"01ARZ3NDEKTSV4RRFFQ69G5FAVV", "01ARZ3NDEKTSV4RRFFQ69G5FLU", "p1", "p 1", "proposal:1.a_b-c", ".p"}
	for _, c := range cases {
		require.Equal(t, manifestReAction.MatchString(c), ValidAction(c), "ValidAction(%q)", c)
		require.Equal(t, manifestReULID.MatchString(c), ValidProposalID(c), "ValidProposalID(%q)", c)
		require.Equal(t, manifestReProposalID.MatchString(c), ValidProposalRef(c), "ValidProposalRef(%q)", c)
		if ValidProposalID(c) {
			require.True(t, ValidProposalRef(c), "a proposal id is a proposal ref: %q", c)
		}
	}
}

func TestManifestValidate(t *testing.T) {
	params, err := structpb.NewStruct(map[string]any{"replicas": 5000})
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		m    *typesv1.Manifest
		want string
	}{
		"ok":                {&typesv1.Manifest{Action: "scale", Target: "svc", Regions: []string{"eu-west"}, Impact: "low"}, ""},
		"no action":         {&typesv1.Manifest{Target: "svc"}, "manifest.action is required"},
		"bad action":        {&typesv1.Manifest{Action: "Scale", Target: "svc"}, "manifest.action"},
		"no target":         {&typesv1.Manifest{Action: "scale"}, "manifest.target is required"},
		"control char":      {&typesv1.Manifest{Action: "scale", Target: "a\x01"}, "manifest.target: want 1-256 printable characters"},
		"duplicate":         {&typesv1.Manifest{Action: "scale", Target: "svc", Regions: []string{"eu", "eu"}}, "duplicate"},
		"impact":            {&typesv1.Manifest{Action: "scale", Target: "svc", Impact: "huge"}, "manifest.impact"},
		"schema":            {&typesv1.Manifest{Action: "scale", Target: "svc", Parameters: params}, "manifest.parameters.replicas: must be an integer in [0, 1000], not 5000"},
		"unknown action ok": {&typesv1.Manifest{Action: "frobnicate", Target: "svc", Parameters: params}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			err := Validate(tc.m)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, codes.InvalidArgument, status.Code(err))
			require.Contains(t, status.Convert(err).Message(), tc.want)
		})
	}
}

// Canonical gives the bytes canonical.Proto gives and their SHA-256, and Decode
// reads them back to an equal manifest with the same digest.
func TestManifestCanonicalRoundTrip(t *testing.T) {
	params, err := structpb.NewStruct(map[string]any{"replicas": 3, "note": "a <b> & c"})
	require.NoError(t, err)
	m := &typesv1.Manifest{Action: "scale", Target: "svc", Regions: []string{"us-east", "eu-west"}, Parameters: params}
	raw, sum, err := Canonical(m)
	require.NoError(t, err)
	want, err := canonical.Proto(m)
	require.NoError(t, err)
	require.Equal(t, want, raw)
	require.Equal(t, canonical.SHA256Hex(want), sum)
	require.True(t, canonical.IsSHA256Hex(sum))

	back, err := Decode(raw)
	require.NoError(t, err)
	_, again, err := Canonical(back)
	require.NoError(t, err)
	require.Equal(t, sum, again)

	_, err = Decode([]byte(`{"action":"scale","unknown_member":1}`))
	require.Error(t, err, "a stored manifest with a member this build does not know is an error, not dropped")
}

func TestManifestChange(t *testing.T) {
	params, err := structpb.NewStruct(map[string]any{"replicas": 3})
	require.NoError(t, err)
	c := Change("t1", &typesv1.Manifest{Action: "scale", Target: "svc", Regions: []string{"eu-west"}, Parameters: params, TenantId: "t2"})
	require.Equal(t, "t1", c.TenantID)
	require.Equal(t, "scale", c.Action)
	require.Equal(t, "svc", c.Target)
	require.Equal(t, []string{"eu-west"}, c.Regions)
	require.Equal(t, map[string]any{"replicas": 3.0}, c.Parameters)
	require.NotNil(t, Change("t1", &typesv1.Manifest{}).Parameters, "no parameters: an empty map, as AsMap gives")
}

func TestManifestValidTarget(t *testing.T) {
	for target, want := range map[string]bool{
		"": true, "svc": true, "serviceX/eu": true, "é": true, "a\x01": false, "a\x7f": false, "\xff": false,
		string(make([]byte, MaxTargetBytes)): false,
	} {
		require.Equal(t, want, ValidTarget(target), "ValidTarget(%q)", target)
	}
	require.True(t, ValidTarget(strings.Repeat("a", MaxTargetBytes)))
	require.False(t, ValidTarget(strings.Repeat("a", MaxTargetBytes+1)))
}
