package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	hilv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/hil/v1"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/keyfile"
	"github.com/decision-fabric/fabric/internal/mfa"
	"github.com/decision-fabric/fabric/internal/notify"
	"github.com/decision-fabric/fabric/internal/server"
	"github.com/decision-fabric/fabric/services/decision-coordinator/coordinator"
	"github.com/decision-fabric/fabric/services/hil-gateway/hil"
	"github.com/decision-fabric/fabric/services/hil-gateway/hil/web"
)

// hilService builds the hil-gateway from the configuration: its TOTP second factor
// (sealing key in data_dir/keys, created in simulation only), its WebAuthn second
// factor where hil.webauthn.rp_id is set, its notification
// channels, the approvers' public keys, the approval page and the chat callbacks.
func (a *App) hilService(_ context.Context) (server.Service, error) {
	coord, err := a.Dial(fabric.Coordinator)
	if err != nil {
		return server.Service{}, err
	}
	key, err := a.mfaKey()
	if err != nil {
		return server.Service{}, err
	}
	totp, err := mfa.New(a.Store.MFA(), key, mfa.Options{})
	if err != nil {
		return server.Service{}, err
	}
	chans, err := a.notifyChannels()
	if err != nil {
		return server.Service{}, err
	}
	keys, err := approverKeys(a.Cfg.HIL.ApproverKeysDir)
	if err != nil {
		return server.Service{}, err
	}
	users := map[string]hil.ChatUser{}
	for id, u := range a.Cfg.HIL.ChatUsers {
		users[id] = hil.ChatUser{Subject: u.Subject, Tenant: u.Tenant, Roles: u.Roles, Groups: u.Groups}
	}
	public := a.Cfg.HIL.PublicURL
	if public == "" {
		public = "http://" + a.Cfg.Services[fabric.HIL].HTTPAddr + "/ui"
		if h, p, err := net.SplitHostPort(a.Cfg.Services[fabric.HIL].HTTPAddr); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
			public = "http://127.0.0.1:" + p + "/ui"
		}
	}
	// Outside simulation every approval carries the approver's signature (P3);
	// simulation asks for it only when configured to.
	requireSig := !a.Simulation
	if r := a.Cfg.HIL.RequireSignature; r != nil && *r {
		requireSig = true
	}
	var wa *hil.WebAuthn
	if w := a.Cfg.HIL.WebAuthn; w.Enabled() {
		name := w.RPDisplayName
		if name == "" {
			name = "Decision Fabric"
		}
		wa, err = hil.NewWebAuthn(a.Store.WebAuthn(), hil.WebAuthnConfig{RPID: w.RPID, RPDisplayName: name, RPOrigins: w.RPOrigins})
		if err != nil {
			return server.Service{}, fmt.Errorf("hil.webauthn: %w", err)
		}
	}
	id := identity{a.serviceToken}
	svc, err := hil.New(hil.Deps{
		Coordinator: coordinatorv1.NewCoordinatorServiceClient(coord), AsService: id.as,
		Store: a.Store, MFA: totp, WebAuthn: wa, Verifier: a.Verifier, Channels: chans, PublicURL: public,
		ApproverKeys: keys, RequireSignature: requireSig, ChatUsers: users, Logger: a.Log,
	})
	if err != nil {
		return server.Service{}, err
	}
	page := web.New(svc.PageBackend(), web.Options{BasePath: "/ui", Secure: !plainLoopback(public)})
	def := svc.Definition()
	def.HTTP = svc.Routes(page)
	svc.Start(hil.Background{Delivery: hil.DeliveryOptions{Lease: time.Duration(a.Cfg.HIL.DeliveryLease)}})
	def.Close = svc.Close
	return def, nil
}

// plainLoopback: the page is served over plain http on a loopback address (the
// session cookie cannot be Secure there).
func plainLoopback(public string) bool {
	u, err := url.Parse(public)
	if err != nil || u.Scheme != "http" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()
}

// mfaKey is the 32-byte key TOTP secrets are sealed with: hil.mfa_key_file, else
// data_dir/keys/mfa.key, created on first use in simulation only.
func (a *App) mfaKey() ([]byte, error) {
	if vpath := a.Cfg.Integrations.Vault.MFAKeyPath; vpath != "" {
		key, err := a.vaultField(vpath, "key", true)
		if err != nil {
			return nil, fmt.Errorf("hil: mfa key (integrations.vault.mfa_key_path): %w", err)
		}
		if len(key) != mfa.KeySize {
			return nil, fmt.Errorf("hil: mfa key in vault %s holds %d bytes, not %d", vpath, len(key), mfa.KeySize)
		}
		return key, nil
	}
	path := a.Cfg.HIL.MFAKeyFile
	if path == "" {
		path = filepath.Join(a.Cfg.DataDir, "keys", "mfa.key")
	}
	key, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && a.Simulation && a.Cfg.HIL.MFAKeyFile == "" {
		key = make([]byte, mfa.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := keyfile.CreateExclusive(path, key, 0o600); err != nil {
			// Another process created it first: use theirs.
			if key, err = os.ReadFile(path); err != nil {
				return nil, fmt.Errorf("hil: mfa key: %w", err)
			}
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hil: mfa key (hil.mfa_key_file, %d random bytes; created in simulation only): %w", mfa.KeySize, err)
	}
	if len(key) != mfa.KeySize {
		return nil, fmt.Errorf("hil: mfa key %s holds %d bytes, not %d", path, len(key), mfa.KeySize)
	}
	return key, nil
}

// notifyChannels are the configured notification channels, in order ("simulated"
// when none is configured).
func (a *App) notifyChannels() ([]notify.Channel, error) {
	names := a.Cfg.HIL.Channels
	if len(names) == 0 {
		names = []string{"simulated"}
	}
	secret := func(env string) string {
		if env == "" {
			return ""
		}
		return os.Getenv(env)
	}
	var out []notify.Channel
	for _, n := range names {
		var ch notify.Channel
		var err error
		switch n {
		case "simulated":
			ch = &notify.Simulated{}
		case "smtp":
			c := a.Cfg.HIL.SMTP
			ch, err = notify.NewSMTP(notify.SMTPConfig{Host: c.Host, Port: c.Port, From: c.From, To: c.To,
				Username: c.Username, Password: secret(c.PasswordEnv), TLS: c.TLS})
		case "slack":
			c := a.Cfg.HIL.Slack
			ch, err = notify.NewSlack(notify.SlackConfig{Token: secret(c.TokenEnv), ChannelID: c.ChannelID,
				SigningSecret: secret(c.SigningSecretEnv), APIURL: c.APIURL})
		case "telegram":
			c := a.Cfg.HIL.Telegram
			ch, err = notify.NewTelegram(notify.TelegramConfig{Token: secret(c.TokenEnv), ChatID: c.ChatID,
				WebhookSecret: secret(c.WebhookSecretEnv), ServerURL: c.ServerURL})
		default:
			err = fmt.Errorf("unknown channel %q (simulated, smtp, slack, telegram)", n)
		}
		if err != nil {
			return nil, fmt.Errorf("hil.channels: %s: %w", n, err)
		}
		out = append(out, ch)
	}
	return out, nil
}

// approverKeys reads dir's <subject>.pub files.
func approverKeys(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if dir == "" {
		return out, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("hil.approver_keys_dir: %w", err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".pub")] = pem
	}
	return out, nil
}

// hilClient is the coordinator's view of the hil-gateway.
type hilClient struct {
	c hilv1.HILServiceClient
	identity
}

func (h hilClient) RequestApproval(ctx context.Context, r coordinator.ApprovalRequest) error {
	req := &hilv1.RequestApprovalRequest{ProposalId: r.ProposalID, TenantId: r.TenantID, Impact: r.Impact,
		Summary: r.Summary, Deadline: timestamppb.New(r.Deadline), ApprovalsNeeded: int32(r.Needed)}
	if !r.RemindAt.IsZero() {
		req.RemindAt = timestamppb.New(r.RemindAt)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := h.c.RequestApproval(h.as(ctx, r.TenantID), req)
	return err
}
