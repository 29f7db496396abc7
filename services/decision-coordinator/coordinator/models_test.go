package coordinator

import (
	"strings"
	"testing"

	"github.com/decision-fabric/fabric/internal/canonical"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	"github.com/decision-fabric/fabric/internal/redact"
)

func TestValidateSubmit(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		body string
		want string // "" = valid
	}{
		"spec example":        {`{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX"}}`, ""},
		"full":                {`{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX","regions":["eu-west","us-east"],"impact":"high","parameters":{"replicas":12}},"metadata":{"ticket":"OPS-1"}}`, ""},
		"no tenant":           {`{"manifest":{"action":"scale","target":"x"}}`, "tenant_id is required"},
		"bad tenant":          {`{"tenant_id":"t 1","manifest":{"action":"scale","target":"x"}}`, "tenant_id"},
		"no manifest":         {`{"tenant_id":"t1"}`, "manifest is required"},
		"no action":           {`{"tenant_id":"t1","manifest":{"target":"x"}}`, "manifest.action is required"},
		"bad action":          {`{"tenant_id":"t1","manifest":{"action":"Scale Up","target":"x"}}`, "manifest.action"},
		"no target":           {`{"tenant_id":"t1","manifest":{"action":"scale"}}`, "manifest.target is required"},
		"control char":        {`{"tenant_id":"t1","manifest":{"action":"scale","target":"a\u0007b"}}`, "manifest.target"},
		"bad region":          {`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","regions":["EU West"]}}`, "manifest.regions[0]"},
		"dup region":          {`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","regions":["eu","eu"]}}`, "duplicate"},
		"bad impact":          {`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","impact":"huge"}}`, "manifest.impact"},
		"cross-tenant shape":  {`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","tenant_id":"t2"}}`, ""},
		"bad manifest tenant": {`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","tenant_id":"t 2"}}`, "manifest.tenant_id"},
		"oversized metadata":  {`{"tenant_id":"t1","manifest":{"action":"scale","target":"x"},"metadata":{"b":"` + strings.Repeat("a", maxMetadataBytes) + `"}}`, "metadata"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			req := &coordinatorv1.SubmitProposalRequest{}
			require.NoError(t, protojson.Unmarshal([]byte(tc.body), req))
			err := validateSubmit(req)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, codes.InvalidArgument, status.Code(err))
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestValidateIDs(t *testing.T) {
	t.Parallel()
	require.NoError(t, validateID("01ARZ3NDEKTSV4RRFFQ69G5FAV"))
	for _, bad := range []string{"", "p1", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01arz3ndektsv4rrffq69g5fav", "../../etc/passwd"} {
		require.Equal(t, codes.InvalidArgument, status.Code(validateID(bad)), bad)
	}
	require.NoError(t, validateIdempotencyKey(""))
	require.NoError(t, validateIdempotencyKey("deploy-42"))
	require.Error(t, validateIdempotencyKey("has space"))
	require.Error(t, validateIdempotencyKey(strings.Repeat("k", maxIdempotencyKey+1)))
}

func TestStatusNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for v := range coordinatorv1.ProposalStatus_name {
		s := coordinatorv1.ProposalStatus(v)
		require.Equal(t, s, statusFromString(statusString(s)))
	}
	require.Equal(t, "SUBMITTED", statusString(coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED))
}

func TestCheckPersonalData(t *testing.T) {
	t.Parallel()
	parse := func(body string) *coordinatorv1.SubmitProposalRequest {
		req := &coordinatorv1.SubmitProposalRequest{}
		require.NoError(t, protojson.Unmarshal([]byte(body), req))
		return req
	}
	parseNil := func(body string) (*coordinatorv1.SubmitProposalRequest, map[redact.Kind]bool) {
		return parse(body), nil
	}
	require.NoError(t, checkPersonalData(parseNil(`{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX","parameters":{"replicas":12}}}`)))

	err := checkPersonalData(parseNil(`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"note":"call +44 20 7946 0958"}}}`))
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.NotContains(t, err.Error(), "7946")

	err = checkPersonalData(parseNil(`{"tenant_id":"t1","manifest":{"action":"scale","target":"x"},"metadata":{"requester_email":"a@b.example"}}`))
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Contains(t, err.Error(), "metadata.")
	require.NotContains(t, err.Error(), "a@b.example")

	err = checkPersonalData(parseNil(`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"password":"hunter2"}}}`))
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.NotContains(t, err.Error(), "hunter2")

	err = checkPersonalData(parse(`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"owner":"jane@example.com"}}}`), map[redact.Kind]bool{redact.KindEmail: true})
	require.NoError(t, err, "consented kinds pass")
	err = checkPersonalData(parse(`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","parameters":{"owner":"jane@example.com","phone":"+44 20 7946 0958"}}}`), map[redact.Kind]bool{redact.KindEmail: true})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "kinds outside the consent are still refused")
}

// FuzzSubmitRequest feeds untrusted JSON through the gateway's decoder and the
// validators: they must never panic, and whatever they accept must canonicalise.
func FuzzSubmitRequest(f *testing.F) {
	f.Add([]byte(`{"tenant_id":"t1","manifest":{"action":"scale","target":"serviceX"}}`))
	f.Add([]byte(`{"tenant_id":"t1","manifest":{"action":"scale","target":"x","regions":["a","b"],"parameters":{"n":[1,{"x":null}]}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := &coordinatorv1.SubmitProposalRequest{}
		if protojson.Unmarshal(raw, req) != nil {
			return
		}
		if validateSubmit(req) != nil {
			return
		}
		// A valid request is one the coordinator can store and sign: its manifest has
		// a canonical form.
		if _, err := canonical.Proto(req.GetManifest()); err != nil {
			t.Fatalf("valid manifest without a canonical form: %v", err)
		}
		_ = checkPersonalData(req, nil)
	})
}
