package hil

// WebAuthn as the approver's second factor, where configured (issue: "WebAuthn as a
// second factor where configured, its challenge bound to the manifest digest").
//
// An approver registers an authenticator once (BeginRegistration, FinishRegistration).
// To approve a proposal the gateway asks for an assertion (BeginApproval) whose
// challenge is not random only but
//
//	SHA-256("decision-fabric/approval/v1\n" + tenant + "\n" + manifest_sha256 + "\n" + hex(16 random bytes))
//
// so the authenticator's signature covers that one manifest: FinishApproval recomputes
// the challenge from the proposal's manifest digest it is given and refuses an assertion
// made for any other. Sessions (the challenge and what it is bound to) are kept in the
// gateway's store (webauthn_sessions), expire (registration 5 minutes, approval 2
// minutes) and are used once: FinishApproval takes (deletes) the session in one
// statement before anything else, whatever the outcome. The signature counter must
// increase on every assertion (a cloned authenticator is refused), advanced with a
// compare-and-swap so two assertions cannot both pass with one counter value.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/store"
)

// The WebAuthn ceremonies' lifetimes: how long a begun ceremony may be finished.
const (
	WebAuthnRegistrationTTL = 5 * time.Minute
	WebAuthnApprovalTTL     = 2 * time.Minute
)

// webAuthnApprovalDomain prefixes the preimage of an approval challenge.
const webAuthnApprovalDomain = "decision-fabric/approval/v1\n"

// The WebAuthn factor's errors. Callers branch with errors.Is; WebAuthnHTTPStatus and
// WebAuthnGRPCError map them.
var (
	// ErrNoCredential: the subject has no WebAuthn credential in the tenant (403).
	ErrNoCredential = errors.New("hil: webauthn: no credential registered for this approver")
	// ErrChallenge: the response answers no live session of this approver: missing,
	// expired, already used, of another kind, or made for another manifest digest (401).
	ErrChallenge = errors.New("hil: webauthn: challenge missing, expired, already used or for another manifest")
	// ErrAssertion: the authenticator's response does not verify: malformed, bad
	// signature, origin, RP ID, user presence or verification, unknown credential, or a
	// signature counter that did not increase (401). Registration uses it for an
	// attestation that does not verify.
	ErrAssertion = errors.New("hil: webauthn: authenticator response refused")
)

// WebAuthnHTTPStatus is the HTTP status for an error of the WebAuthn factor: 403 for
// ErrNoCredential, 401 for ErrChallenge and ErrAssertion, 500 otherwise.
func WebAuthnHTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrNoCredential):
		return http.StatusForbidden
	case errors.Is(err, ErrChallenge), errors.Is(err, ErrAssertion):
		return http.StatusUnauthorized
	default:
		return http.StatusInternalServerError
	}
}

// WebAuthnGRPCError maps an error of the WebAuthn factor to a gRPC status error
// (PermissionDenied, Unauthenticated, or Internal without the cause's text).
func WebAuthnGRPCError(err error) error {
	switch WebAuthnHTTPStatus(err) {
	case http.StatusForbidden:
		return status.Error(codes.PermissionDenied, ErrNoCredential.Error())
	case http.StatusUnauthorized:
		if errors.Is(err, ErrChallenge) {
			return status.Error(codes.Unauthenticated, ErrChallenge.Error())
		}
		return status.Error(codes.Unauthenticated, ErrAssertion.Error())
	default:
		return status.Error(codes.Internal, "webauthn check failed")
	}
}

// WebAuthnConfig configures the relying party.
type WebAuthnConfig struct {
	// RPID is the relying party ID: the approval page's host name ("approvals.example").
	RPID string
	// RPDisplayName is shown by the authenticator at registration.
	RPDisplayName string
	// RPOrigins are the origins the ceremonies may run at ("https://approvals.example").
	RPOrigins []string
	// Now is the clock for session expiry; time.Now when nil.
	Now func() time.Time
}

// WebAuthn is the WebAuthn second factor: registration of approvers' authenticators and
// assertions bound to a manifest digest. Safe for concurrent use.
type WebAuthn struct {
	st  store.WebAuthnStore
	wa  *webauthn.WebAuthn
	now func() time.Time
}

// NewWebAuthn returns the factor over st (the gateway's Store().WebAuthn()).
func NewWebAuthn(st store.WebAuthnStore, cfg WebAuthnConfig) (*WebAuthn, error) {
	if st == nil {
		return nil, errors.New("hil: webauthn: a store is required")
	}
	if cfg.RPID == "" || cfg.RPDisplayName == "" || len(cfg.RPOrigins) == 0 {
		return nil, errors.New("hil: webauthn: RPID, RPDisplayName and RPOrigins are required")
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPDisplayName,
		RPOrigins:     append([]string(nil), cfg.RPOrigins...),
		// No attestation: the factor proves possession of the registered key; which
		// authenticator model holds it is not checked.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
			UserVerification: protocol.VerificationRequired,
		},
		// The sessions' expiry is enforced here against cfg.Now, not by the library's
		// wall clock; these are the hints given to the browser.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: WebAuthnApprovalTTL, TimeoutUVD: WebAuthnApprovalTTL},
			Registration: webauthn.TimeoutConfig{Timeout: WebAuthnRegistrationTTL, TimeoutUVD: WebAuthnRegistrationTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("hil: webauthn: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &WebAuthn{st: st, wa: wa, now: now}, nil
}

// webAuthnUser is an approver as go-webauthn sees them.
type webAuthnUser struct {
	tenant, subject string
	creds           []webauthn.Credential
}

// WebAuthnID is the user handle: a digest of tenant and subject (stable, at most 64
// bytes, and not the subject itself).
func (u *webAuthnUser) WebAuthnID() []byte {
	h := sha256.Sum256([]byte("decision-fabric/webauthn-user/v1\n" + u.tenant + "\n" + u.subject))
	return h[:]
}

func (u *webAuthnUser) WebAuthnName() string                       { return u.subject }
func (u *webAuthnUser) WebAuthnDisplayName() string                { return u.subject }
func (u *webAuthnUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// user loads the subject's credentials.
func (w *WebAuthn) user(ctx context.Context, tenant, subject string) (*webAuthnUser, error) {
	rows, err := w.st.ListWebAuthnCredentials(ctx, tenant, subject)
	if err != nil {
		return nil, fmt.Errorf("hil: webauthn: %w", err)
	}
	u := &webAuthnUser{tenant: tenant, subject: subject}
	for _, r := range rows {
		u.creds = append(u.creds, webauthn.Credential{
			ID:                r.ID,
			PublicKey:         r.PublicKey,
			AttestationFormat: r.AttestationFormat,
			Flags:             webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(r.Flags)),
			Authenticator:     webauthn.Authenticator{AAGUID: r.AAGUID, SignCount: r.SignCount},
		})
	}
	return u, nil
}

// webAuthnSessionData is what a stored session's Data holds.
type webAuthnSessionData struct {
	Session webauthn.SessionData `json:"session"`
	// Nonce is an approval challenge's random part (hex of 16 bytes).
	Nonce string `json:"nonce,omitempty"`
}

func checkNames(tenant, subject string) error {
	if tenant == "" || subject == "" {
		return errors.New("hil: webauthn: tenant and subject are required")
	}
	return nil
}

// BeginRegistration starts registering an authenticator for subject in tenant. It
// returns the PublicKeyCredentialCreationOptions as JSON (for
// PublicKeyCredential.parseCreationOptionsFromJSON and navigator.credentials.create;
// the subject's registered credentials are excluded) and keeps the session for
// WebAuthnRegistrationTTL.
func (w *WebAuthn) BeginRegistration(ctx context.Context, tenant, subject string) (json.RawMessage, error) {
	if err := checkNames(tenant, subject); err != nil {
		return nil, err
	}
	u, err := w.user(ctx, tenant, subject)
	if err != nil {
		return nil, err
	}
	creation, sd, err := w.wa.BeginRegistration(u, webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()))
	if err != nil {
		return nil, fmt.Errorf("hil: webauthn: begin registration: %w", err)
	}
	if err := w.putSession(ctx, tenant, subject, store.WebAuthnRegistration, "", webAuthnSessionData{Session: *sd}, WebAuthnRegistrationTTL); err != nil {
		return nil, err
	}
	return marshalOptions(creation.Response)
}

// FinishRegistration verifies the client's response to BeginRegistration's options (the
// PublicKeyCredential as JSON) and stores the credential. ErrChallenge when it answers
// no live registration of this subject; ErrAssertion when it does not verify or the
// credential is already registered.
func (w *WebAuthn) FinishRegistration(ctx context.Context, tenant, subject string, response []byte) error {
	if err := checkNames(tenant, subject); err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return refused(err)
	}
	data, _, err := w.takeSession(ctx, tenant, subject, parsed.Response.CollectedClientData.Challenge, store.WebAuthnRegistration)
	if err != nil {
		return err
	}
	u, err := w.user(ctx, tenant, subject)
	if err != nil {
		return err
	}
	cred, err := w.wa.CreateCredential(u, data.Session, parsed)
	if err != nil {
		return refused(err)
	}
	_, err = w.st.PutWebAuthnCredential(ctx, &store.WebAuthnCredential{
		TenantID: tenant, Subject: subject, ID: cred.ID, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID,
		Flags: uint8(cred.Flags.ProtocolValue()), AttestationFormat: cred.AttestationFormat,
		CreatedAt: w.now(),
	})
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: credential already registered", ErrAssertion)
	}
	if err != nil {
		return fmt.Errorf("hil: webauthn: %w", err)
	}
	return nil
}

// ApprovalChallenge is the challenge of an approval assertion: SHA-256 of
// "decision-fabric/approval/v1\n" + tenant + "\n" + manifestSHA256 + "\n" + nonceHex.
func ApprovalChallenge(tenant, manifestSHA256, nonceHex string) []byte {
	h := sha256.Sum256([]byte(webAuthnApprovalDomain + tenant + "\n" + manifestSHA256 + "\n" + nonceHex))
	return h[:]
}

// validDigest reports whether d is a SHA-256 digest in lowercase hex, as proposals
// carry manifest_sha256.
func validDigest(d string) bool {
	if len(d) != 2*sha256.Size {
		return false
	}
	for _, c := range d {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// BeginApproval starts an assertion that approves the manifest whose digest is
// manifestSHA256 (the proposal's manifest_sha256, lowercase hex): it returns the
// PublicKeyCredentialRequestOptions as JSON (for
// PublicKeyCredential.parseRequestOptionsFromJSON and navigator.credentials.get),
// whose challenge is bound to the tenant and the digest (ApprovalChallenge), and keeps
// the session for WebAuthnApprovalTTL. ErrNoCredential when the subject has none.
func (w *WebAuthn) BeginApproval(ctx context.Context, tenant, subject, manifestSHA256 string) (json.RawMessage, error) {
	if err := checkNames(tenant, subject); err != nil {
		return nil, err
	}
	if !validDigest(manifestSHA256) {
		return nil, errors.New("hil: webauthn: the manifest digest must be SHA-256 in lowercase hex")
	}
	u, err := w.user(ctx, tenant, subject)
	if err != nil {
		return nil, err
	}
	if len(u.creds) == 0 {
		return nil, ErrNoCredential
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("hil: webauthn: %w", err)
	}
	nonceHex := hex.EncodeToString(nonce[:])
	assertion, sd, err := w.wa.BeginLogin(u,
		webauthn.WithChallenge(ApprovalChallenge(tenant, manifestSHA256, nonceHex)),
		webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("hil: webauthn: begin approval: %w", err)
	}
	if err := w.putSession(ctx, tenant, subject, store.WebAuthnApproval, manifestSHA256,
		webAuthnSessionData{Session: *sd, Nonce: nonceHex}, WebAuthnApprovalTTL); err != nil {
		return nil, err
	}
	return marshalOptions(assertion.Response)
}

// FinishApproval verifies the client's assertion (the PublicKeyCredential as JSON) for
// the manifest whose digest is manifestSHA256. The session it answers is used up
// whatever the outcome. ErrChallenge when it answers no live approval session of this
// subject or one begun for another digest; ErrNoCredential when the subject has no
// credential; ErrAssertion when the assertion does not verify (signature, origin, RP
// ID, user presence and verification, credential) or its signature counter did not
// increase. On success the credential's counter is advanced.
func (w *WebAuthn) FinishApproval(ctx context.Context, tenant, subject, manifestSHA256 string, response []byte) error {
	if err := checkNames(tenant, subject); err != nil {
		return err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return refused(err)
	}
	data, sess, err := w.takeSession(ctx, tenant, subject, parsed.Response.CollectedClientData.Challenge, store.WebAuthnApproval)
	if err != nil {
		return err
	}
	// The session was begun for sess.ManifestSHA256; its challenge commits to it.
	// Recompute it for the digest being approved: both must match.
	if sess.ManifestSHA256 != manifestSHA256 {
		return fmt.Errorf("%w: the challenge was issued for another manifest", ErrChallenge)
	}
	stored, err := base64.RawURLEncoding.DecodeString(data.Session.Challenge)
	if err != nil || subtle.ConstantTimeCompare(stored, ApprovalChallenge(tenant, manifestSHA256, data.Nonce)) != 1 {
		return fmt.Errorf("%w: the challenge is not bound to this manifest", ErrChallenge)
	}
	u, err := w.user(ctx, tenant, subject)
	if err != nil {
		return err
	}
	if len(u.creds) == 0 {
		return ErrNoCredential
	}
	cred, err := w.wa.ValidateLogin(u, data.Session, parsed)
	if err != nil {
		return refused(err)
	}
	if cred.Authenticator.CloneWarning {
		return fmt.Errorf("%w: signature counter did not increase (cloned authenticator?)", ErrAssertion)
	}
	_, err = w.st.AdvanceWebAuthnSignCount(ctx, tenant, subject, cred.ID, parsed.Response.AuthenticatorData.Counter,
		uint8(cred.Flags.ProtocolValue()), w.now())
	switch {
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: signature counter did not increase (cloned authenticator?)", ErrAssertion)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: credential removed", ErrAssertion)
	case err != nil:
		return fmt.Errorf("hil: webauthn: %w", err)
	}
	return nil
}

func (w *WebAuthn) putSession(ctx context.Context, tenant, subject, kind, digest string, data webAuthnSessionData, ttl time.Duration) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("hil: webauthn: %w", err)
	}
	now := w.now()
	err = w.st.PutWebAuthnSession(ctx, &store.WebAuthnSession{
		TenantID: tenant, Challenge: data.Session.Challenge, Subject: subject, Kind: kind,
		ManifestSHA256: digest, Data: raw, CreatedAt: now, ExpiresAt: now.Add(ttl),
	})
	if err != nil {
		return fmt.Errorf("hil: webauthn: %w", err)
	}
	return nil
}

// takeSession uses up the subject's session for challenge and checks its kind and
// expiry.
func (w *WebAuthn) takeSession(ctx context.Context, tenant, subject, challenge, kind string) (*webAuthnSessionData, *store.WebAuthnSession, error) {
	if challenge == "" {
		return nil, nil, fmt.Errorf("%w: no challenge in the response", ErrChallenge)
	}
	sess, err := w.st.TakeWebAuthnSession(ctx, tenant, subject, challenge)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: no such session (never begun, or already used)", ErrChallenge)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("hil: webauthn: %w", err)
	}
	if sess.Kind != kind {
		return nil, nil, fmt.Errorf("%w: the session is a %s, not a %s", ErrChallenge, sess.Kind, kind)
	}
	if !w.now().Before(sess.ExpiresAt) {
		return nil, nil, fmt.Errorf("%w: the session expired", ErrChallenge)
	}
	var data webAuthnSessionData
	if err := json.Unmarshal(sess.Data, &data); err != nil || data.Session.Challenge != challenge {
		return nil, nil, fmt.Errorf("hil: webauthn: stored session is malformed")
	}
	return &data, sess, nil
}

// refused wraps a go-webauthn error in ErrAssertion, keeping its developer detail (for
// logs; WebAuthnGRPCError does not pass it on).
func refused(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return fmt.Errorf("%w: %w (%s)", ErrAssertion, err, pe.DevInfo)
	}
	return fmt.Errorf("%w: %w", ErrAssertion, err)
}

func marshalOptions(v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("hil: webauthn: %w", err)
	}
	return b, nil
}
