package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/services/decision-coordinator/coordinator"
)

// conns are the process's client connections to peer services, one per peer: the
// in-process connection of a service this process serves (registered by serve before
// any module dials, bound to the service's server by bindLocal once it exists), a
// gRPC client connection (created lazily: grpc.NewClient does not dial until the
// first call) otherwise.
type conns struct {
	mu sync.Mutex
	m  map[string]grpc.ClientConnInterface
}

// Dial returns the shared client connection to a service, in either topology. A
// service this process serves is called in-process (server.Server.Local: the same
// interceptor chain, no socket); any other over gRPC at services.<name>.dial
// (default 127.0.0.1 and its gRPC port).
func (a *App) Dial(service string) (grpc.ClientConnInterface, error) {
	a.conns.mu.Lock()
	defer a.conns.mu.Unlock()
	if c, ok := a.conns.m[service]; ok {
		return c, nil
	}
	if a.conns.m == nil {
		a.conns.m = map[string]grpc.ClientConnInterface{}
	}
	c, err := grpc.NewClient(a.Cfg.Services[service].DialAddr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", service, err)
	}
	a.conns.m[service] = c
	a.closers = append(a.closers, c.Close)
	return c, nil
}

// serve records that this process serves service, before any module dials it: its
// peers here get its in-process connection.
func (a *App) serve(service string) {
	a.conns.mu.Lock()
	defer a.conns.mu.Unlock()
	if a.conns.m == nil {
		a.conns.m = map[string]grpc.ClientConnInterface{}
	}
	a.conns.m[service] = &localConn{service: service}
}

// bindLocal points the in-process connection to service at its server.
func (a *App) bindLocal(service string, srv *server.Server) {
	a.conns.mu.Lock()
	defer a.conns.mu.Unlock()
	if c, ok := a.conns.m[service].(*localConn); ok {
		c.srv.Store(srv)
	}
}

// localConn is the in-process connection to a service of this process, usable
// before the service's server exists (calls made before are refused UNAVAILABLE, as a
// listener not yet open refuses them).
type localConn struct {
	service string
	srv     atomic.Pointer[server.Server]
}

func (c *localConn) conn() (grpc.ClientConnInterface, error) {
	srv := c.srv.Load()
	if srv == nil {
		return nil, status.Errorf(codes.Unavailable, "%s is not serving yet", c.service)
	}
	return srv.Local(), nil
}

func (c *localConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := c.conn()
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

func (c *localConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := c.conn()
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}

// identity is how a client of a peer service calls: as the fabric's service identity
// for the tenant when one is available (simulation: a short-lived token from the
// development service key), else with the caller's own token. The coordinator's
// lifecycle engine calls with no caller at all, so it needs the former.
type identity struct {
	tokens func(tenant string) (string, error)
}

// as is ctx carrying the identity the call is made with.
func (i identity) as(ctx context.Context, tenantID string) context.Context {
	if i.tokens != nil {
		if tok, err := i.tokens(tenantID); err == nil {
			return metadata.NewOutgoingContext(ctx, metadata.Pairs("authorization", "Bearer "+tok))
		}
	}
	return auth.ForwardToken(ctx)
}

// negotiatorClient is the coordinator's view of the negotiator.
type negotiatorClient struct {
	c negotiatorv1.NegotiatorServiceClient
	identity
}

// Start sends the negotiator everything it needs: the manifest, its digest, the rule
// and the absolute deadline (the negotiator reads no coordinator table).
func (n negotiatorClient) Start(ctx context.Context, req coordinator.NegotiationRequest) (*negotiatorv1.Negotiation, error) {
	resp, err := n.c.StartNegotiation(n.as(ctx, req.TenantID), &negotiatorv1.StartNegotiationRequest{
		ProposalId: req.ProposalID, NegotiationId: req.NegotiationID, QuorumRule: quorum.RuleOrUnspecified(req.Quorum),
		Manifest: req.Manifest, ManifestSha256: req.ManifestSHA256, Deadline: timestamppb.New(req.Deadline),
	})
	return resp.GetNegotiation(), err
}

func (n negotiatorClient) Status(ctx context.Context, tenantID, id string) (*negotiatorv1.Negotiation, error) {
	resp, err := n.c.GetNegotiationStatus(n.as(ctx, tenantID), &negotiatorv1.GetNegotiationStatusRequest{Id: id})
	return resp.GetNegotiation(), err
}

// Wait follows the negotiation's progress stream until it closes after the final state.
func (n negotiatorClient) Wait(ctx context.Context, tenantID, id string) (*negotiatorv1.Negotiation, error) {
	stream, err := n.c.WatchNegotiation(n.as(ctx, tenantID), &negotiatorv1.WatchNegotiationRequest{Id: id})
	if err != nil {
		return nil, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil, err // io.EOF never comes before a final state: see the terminal check
		}
		if msg.GetNegotiation().GetState() != negotiatorv1.NegotiationState_NEGOTIATION_STATE_RUNNING {
			return msg.GetNegotiation(), nil
		}
	}
}

// scorerClient is the coordinator's view of the scorer.
type scorerClient struct {
	c scorerv1.ScorerServiceClient
	identity
}

// Score sends the scorer everything it needs (it reads no coordinator table). The vote
// agreement is the final round's accepting share, absent until a round has completed.
func (s scorerClient) Score(ctx context.Context, in coordinator.ScoreInput) (*scorerv1.ScoreResponse, error) {
	req := &scorerv1.ScoreRequest{ProposalId: in.ProposalID, TenantId: in.TenantID, Manifest: in.Manifest,
		Impact: in.Impact, History: in.History}
	v := in.Votes
	if total := v.GetAccept() + v.GetReject() + v.GetCounter(); v.GetOutcome() != "" && total > 0 {
		req.Votes = &scorerv1.VoteAgreement{Accepted: float64(v.GetAccept()), Total: float64(total)}
	}
	return s.c.Score(s.as(ctx, in.TenantID), req)
}

// decisionRecords gives the decision auditor's export a decision record through the
// coordinator's API (GetProposal), as the fabric's service identity for the caller's
// tenant (an admin may export, and has no coordinator role), else as the caller: the
// auditor reads no coordinator table. An unknown proposal, or another tenant's, is
// store.ErrNotFound.
func decisionRecords(c coordinatorv1.CoordinatorServiceClient, id identity) func(ctx context.Context, tenantID, proposalID string) (*bundle.Decision, error) {
	return func(ctx context.Context, tenantID, proposalID string) (*bundle.Decision, error) {
		resp, err := c.GetProposal(id.as(ctx, tenantID), &coordinatorv1.GetProposalRequest{Id: proposalID})
		if status.Code(err) == codes.NotFound {
			return nil, fmt.Errorf("%w: %s", store.ErrNotFound, proposalID)
		}
		if err != nil {
			return nil, err
		}
		p := resp.GetProposal()
		if p.GetTenantId() != tenantID {
			return nil, fmt.Errorf("%w: %s", store.ErrNotFound, proposalID)
		}
		return bundle.FromProposal(p), nil
	}
}

// auditClient is the coordinator's view of the decision auditor, over gRPC. It calls as
// the fabric's service identity for the tenant when one is available (simulation: a
// short-lived token from the development key) and as the caller otherwise.
type auditClient struct {
	c auditorv1.AuditorServiceClient
	identity
}

func (a auditClient) Append(ctx context.Context, events ...coordinator.AuditRecord) error {
	if len(events) == 0 {
		return nil
	}
	reqs := make([]*auditorv1.AppendEntryRequest, len(events))
	for i, e := range events {
		body, err := structpb.NewStruct(e.Payload)
		if err != nil {
			return fmt.Errorf("audit payload: %w", err)
		}
		reqs[i] = &auditorv1.AppendEntryRequest{ProposalId: e.ProposalID, Event: e.Event,
			Payload: body, IdempotencyKey: e.Key, OnBehalfOf: e.Actor, OriginTraceId: e.TraceID}
	}
	ctx = a.as(ctx, events[0].TenantID) // one request serves one tenant
	if len(reqs) == 1 {
		_, err := a.c.AppendEntry(ctx, reqs[0])
		return err
	}
	_, err := a.c.AppendEntries(ctx, &auditorv1.AppendEntriesRequest{Entries: reqs})
	return err
}

func (a auditClient) RecordSnapshot(ctx context.Context, e coordinator.AuditRecord, sha string) error {
	_, err := a.c.RecordSnapshot(a.as(ctx, e.TenantID), &auditorv1.RecordSnapshotRequest{ProposalId: e.ProposalID, Kind: e.Event,
		Sha256: sha, OnBehalfOf: e.Actor, OriginTraceId: e.TraceID})
	if status.Code(err) == codes.AlreadyExists {
		return nil // recorded by an earlier attempt
	}
	return err
}

// serviceToken mints the fabric's own token for a tenant (role service, 5 minutes) with
// the service key (the development key in simulation); without one, callers forward the
// caller's token instead.
func (a *App) serviceToken(tenant string) (string, error) {
	if a.ServiceSigner == nil {
		return "", errors.New("no service identity: set auth.service_key_file")
	}
	a.serviceTokensOnce.Do(func() {
		a.serviceTokens = auth.NewTokenCache(a.ServiceSigner, "fabric:"+fabric.Coordinator, []string{auth.RoleService}, 5*time.Minute)
	})
	return a.serviceTokens.Token(tenant)
}
