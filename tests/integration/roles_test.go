package integration

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// eachStore runs scenario on both stores (all services in one process: the access
// policy is the same in both topologies).
func eachStoreAllInOne(t *testing.T, scenario func(t *testing.T, f *fabrictest.Fabric)) {
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			scenario(t, fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st}))
		})
	}
}

// serviceOnly lists, per service, the methods only the service role may call.
func serviceOnly(f *fabrictest.Fabric) map[string][]string {
	out := map[string][]string{}
	for svc, pol := range f.AccessPolicy() {
		for method, roles := range pol {
			if slices.Equal(roles, []string{auth.RoleService}) {
				out[svc] = append(out[svc], method)
			}
		}
		sort.Strings(out[svc])
	}
	return out
}

// Issue 9, attack 2: `admin` implied every role, `service` included, so a tenant admin
// could append forged entries to the audit log. Every service-only method now refuses
// every tenant role (admin included) and an identity-provider token claiming the
// service role; only the fabric's service key passes (and then reaches validation).
func TestServiceOnlyMethodsRefuseEveryOtherPrincipal(t *testing.T) {
	eachStoreAllInOne(t, func(t *testing.T, f *fabrictest.Fabric) {
		methods := serviceOnly(f)
		var all []string
		for _, ms := range methods {
			all = append(all, ms...)
		}
		// The ones the attack used must be among them: the list is not empty by accident.
		for _, m := range []string{"/decisionfabric.auditor.v1.AuditorService/AppendEntry",
			"/decisionfabric.auditor.v1.AuditorService/AppendEntries",
			"/decisionfabric.auditor.v1.AuditorService/RecordSnapshot"} {
			require.Contains(t, all, m)
		}
		principals := map[string]struct {
			token string
			want  codes.Code
		}{
			"proposer":            {f.Token(t, "t1", auth.RoleProposer), codes.PermissionDenied},
			"approver":            {f.Token(t, "t1", auth.RoleApprover), codes.PermissionDenied},
			"auditor":             {f.Token(t, "t1", auth.RoleAuditor), codes.PermissionDenied},
			"admin":               {f.Token(t, "t1", auth.RoleAdmin), codes.PermissionDenied},
			"every tenant role":   {f.Token(t, "t1", auth.RoleAdmin, auth.RoleProposer, auth.RoleApprover, auth.RoleAuditor), codes.PermissionDenied},
			"IdP token + service": {f.IDPToken(t, "t1", auth.RoleService), codes.Unauthenticated},
			"IdP admin + service": {f.IDPToken(t, "t1", auth.RoleAdmin, auth.RoleService), codes.Unauthenticated},
		}
		service := f.Token(t, "t1", auth.RoleService)
		for svc, ms := range methods {
			conn := f.Conn(t, svc)
			for _, m := range ms {
				for name, p := range principals {
					err := conn.Invoke(fabrictest.WithToken(context.Background(), p.token), m, &emptypb.Empty{}, &emptypb.Empty{})
					require.Equal(t, p.want, status.Code(err), "%s calling %s: %v", name, m, err)
				}
				// The fabric's own identity passes authorisation (the empty request then
				// fails validation or is answered).
				err := conn.Invoke(fabrictest.WithToken(context.Background(), service), m, &emptypb.Empty{}, &emptypb.Empty{})
				require.NotContains(t, []codes.Code{codes.PermissionDenied, codes.Unauthenticated}, status.Code(err), "service calling %s: %v", m, err)
			}
		}
	})
}

// The REST form of the attack: a tenant admin pre-recording a false post-snapshot hash
// for a proposal, and forging proposal.enacted; both refused, nothing written, and the
// coordinator's real snapshot is then recorded.
func TestAdminCannotWriteTheAuditLog(t *testing.T) {
	eachStoreAllInOne(t, func(t *testing.T, f *fabrictest.Fabric) {
		c := client{f: f, token: f.Token(t, "t1", auth.RoleProposer)}
		admin := f.Token(t, "t1", auth.RoleAdmin)
		p := c.submit(t, `{"action":"scale","target":"serviceX","regions":["eu-west"],"impact":"low","parameters":{"replicas_delta":1}}`)
		p = c.await(t, p.ID, "PROPOSAL_STATUS_SCORED")

		forged := strings.Repeat("ab", 32)
		r := f.Do(t, http.MethodPost, fabric.Auditor, "/snapshot/"+p.ID, admin, `{"kind":"post","sha256":"`+forged+`"}`)
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		r = f.Do(t, http.MethodPost, fabric.Auditor, "/audit/"+p.ID, admin,
			fmt.Sprintf(`{"event":"proposal.enacted","payload_sha256":%q}`, forged))
		require.Contains(t, []int{http.StatusForbidden, http.StatusNotFound, http.StatusNotImplemented, http.StatusMethodNotAllowed}, r.Status, string(r.Body))

		r = c.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusOK, r.Status, "the coordinator's real snapshot is not refused as a duplicate: %s", r.Body)
		trail := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID, f.Token(t, "t1", auth.RoleAuditor), "")
		require.Equal(t, http.StatusOK, trail.Status, string(trail.Body))
		require.False(t, strings.Contains(string(trail.Body), forged), "no forged hash reached the log")
		require.Equal(t, 1, strings.Count(string(trail.Body), `"event":"proposal.enacted"`), "one enactment: the coordinator's")
	})
}
