package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/federation"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/services/federated-negotiator/negotiator"
)

// Federation wiring (docs/operations.md, "Federation"): the registry, the coordinator's
// dial options and a region's RegionService listener. The negotiator's own logic is in
// services/federated-negotiator/negotiator; what regions share is internal/federation.

// federationState caches the federation registry for the negotiator and coordinator.
type federationState struct {
	once sync.Once
	reg  *federation.Registry
	err  error
	// warnOnce logs the federation.allow_insecure warning once per process.
	warnOnce sync.Once
}

// federationRegistry is the registry: GLOBAL_REGISTRY_URL when set, else
// federation.registry_file. Loaded once per process.
func (a *App) federationRegistry(ctx context.Context) (*federation.Registry, error) {
	a.federation.once.Do(func() {
		a.federation.reg, a.federation.err = LoadFederationRegistry(ctx, a.Cfg)
	})
	return a.federation.reg, a.federation.err
}

// LoadFederationRegistry reads the federation registry cfg names: GLOBAL_REGISTRY_URL
// when set, else federation.registry_file.
func LoadFederationRegistry(ctx context.Context, cfg config.Config) (*federation.Registry, error) {
	if u := cfg.Integrations.GlobalRegistryURL; u != "" {
		return federation.FetchRegistry(ctx, nil, u)
	}
	return federation.LoadRegistryFile(cfg.Federation.RegistryFile)
}

// federationRegionKeys is the region key registry of the federation's registry.
func (a *App) federationRegionKeys() (*regionkeys.Registry, error) {
	reg, err := a.federationRegistry(context.Background())
	if err != nil {
		return nil, err
	}
	return reg.Keys()
}

// negotiatorFederation is Deps.Federation when federation.enabled, else nil.
func (a *App) negotiatorFederation(ctx context.Context) (*negotiator.Federation, error) {
	if !a.Cfg.Federation.Enabled {
		return nil, nil
	}
	if err := a.checkFederationTransport(ctx); err != nil {
		return nil, err
	}
	reg, err := a.federationRegistry(ctx)
	if err != nil {
		return nil, err
	}
	opts, err := a.federationTLS().DialOptions(a.Cfg.Integrations.FederationToken.Reveal())
	if err != nil {
		return nil, err
	}
	return &negotiator.Federation{Registry: reg, DialOptions: opts}, nil
}

func (a *App) federationTLS() federation.TLSFiles {
	t := a.Cfg.Federation.TLS
	return federation.TLSFiles{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile}
}

// startRegion serves this process's own region (federation.region) on its own
// listener, behind the federation token and, when configured, mutual TLS. It returns
// the function that stops it; nil when no region is configured.
func (a *App) startRegion(reg prometheus.Registerer) (func() error, error) {
	rc := a.Cfg.Federation.Region
	if rc.Name == "" {
		return nil, nil
	}
	if err := a.checkFederationTransport(context.Background()); err != nil {
		return nil, err
	}
	key, err := auth.LoadPrivateKeyFile(rc.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("federation.region.key_file: %w", err)
	}
	if a.Cfg.Federation.Enabled { // a region that also coordinates must sign with its registry key
		keys, err := a.federationRegionKeys()
		if err != nil {
			return nil, err
		}
		if err := keys.Check(rc.Name, key.Public().(ed25519.PublicKey)); err != nil {
			return nil, fmt.Errorf("federation.region.key_file: %w", err)
		}
	}
	region := negotiator.RegionConfig{Name: rc.Name, Weight: 1, Capacity: rc.Capacity, ErrorBudget: 1,
		CostCeiling: rc.CostCeiling, ReplicaCost: rc.ReplicaCost, Currency: rc.Currency}
	srv, err := negotiator.NewRegionServer(negotiator.RegionServerConfig{
		Limits: negotiator.RegionLimits{Region: region, AllowedActions: rc.AllowedActions, MaxReplicas: rc.MaxReplicas},
		Key:    key, VoteDelay: time.Duration(rc.VoteDelay), Logger: a.Log,
	})
	if err != nil {
		return nil, err
	}
	authn, err := federation.NewAuthenticator(a.Cfg.Integrations.FederationToken.Reveal(), reg)
	if err != nil {
		return nil, err
	}
	creds, err := a.federationTLS().ServerCredentials()
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", rc.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("federation.region.grpc_addr: %w", err)
	}
	g := grpc.NewServer(grpc.Creds(creds), grpc.MaxRecvMsgSize(int(a.Cfg.MaxRequestBytes)),
		grpc.ChainUnaryInterceptor(authn.UnaryInterceptor()), grpc.ChainStreamInterceptor(authn.StreamInterceptor()))
	negotiatorv1.RegisterRegionServiceServer(g, srv)
	go func() {
		if err := g.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			a.Log.Error("federation region listener stopped", "error", err)
		}
	}()
	a.Log.Info("federation region serving", "region", rc.Name, "grpc_addr", lis.Addr().String(), "mtls", a.federationTLS().Enabled())
	return func() error { g.Stop(); return nil }, nil
}

// checkFederationTransport refuses a federation that would send FEDERATION_TOKEN in
// cleartext outside simulation (config.Federation.CheckTransport): without
// federation.tls, every region this coordinator dials (the registry's endpoints) and
// this process's own region listener must be loopback, unless
// federation.allow_insecure, which is warned about once per process (the endpoints,
// never the token). It runs after the precheck, which decides a.Simulation.
func (a *App) checkFederationTransport(ctx context.Context) error {
	f := a.Cfg.Federation
	endpoints := f.RegionEndpoints()
	if f.Enabled && !a.Simulation && !f.TLS.Enabled() {
		reg, err := a.federationRegistry(ctx)
		if err != nil {
			return err
		}
		for _, r := range reg.Regions {
			endpoints = append(endpoints, r.Endpoint)
		}
	}
	plain, err := f.CheckTransport(a.Simulation, endpoints...)
	if err != nil {
		return err
	}
	if len(plain) > 0 {
		a.federation.warnOnce.Do(func() {
			a.Log.WarnContext(ctx, "federation.allow_insecure: FEDERATION_TOKEN is sent in cleartext (plain gRPC); set federation.tls",
				"endpoints", strings.Join(plain, ","))
		})
	}
	return nil
}
