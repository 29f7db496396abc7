package world

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/store"
)

// Webhook is an Executor backed by a tenant's own HTTP endpoint: the fabric POSTs one
// JSON request per operation and the endpoint reads or changes its systems.
//
// Request body (canonical JSON):
//
//	{"op":"read"|"plan"|"apply"|"restore","tenant_id":..,"action":..,"target":..,
//	 "regions":[..],"parameters":{..},"state":{..}}
//
// where state is the expected pre-state for "apply" and the state to restore for
// "restore". Headers: X-Fabric-Timestamp (unix seconds) and X-Fabric-Signature:
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)), so the endpoint can
// authenticate the fabric and refuse replays.
//
// Response: 200 with {"state": {"regions": {"<region>": {...}}}}; 409 when the world is
// not in the expected pre-state (store.ErrConflict); 422 when the change is invalid
// (ErrRejected, with the body's "error" as the reason). Anything else is an error.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client
	// Now is the clock for the timestamp; time.Now when nil.
	Now func() time.Time
}

type webhookRequest struct {
	Op         string         `json:"op"`
	TenantID   string         `json:"tenant_id"`
	Action     string         `json:"action,omitempty"`
	Target     string         `json:"target"`
	Regions    []string       `json:"regions"`
	Parameters map[string]any `json:"parameters,omitempty"`
	State      any            `json:"state,omitempty"`
}

// Sign is the signature header value for body at timestamp ts.
func Sign(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func (w *Webhook) call(ctx context.Context, req webhookRequest) (Snapshot, error) {
	req.Regions = normalise(req.Regions)
	body, err := canonical.Marshal(req)
	if err != nil {
		return Snapshot{}, fmt.Errorf("world: webhook: %w", err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Snapshot{}, fmt.Errorf("world: webhook: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-Fabric-Timestamp", ts)
	hreq.Header.Set("X-Fabric-Signature", Sign(w.Secret, ts, body))
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(hreq)
	if err != nil { // without the URL: a tenant's webhook URL may carry a token
		return Snapshot{}, fmt.Errorf("world: webhook %s: %w", req.Op, redact.TransportError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return Snapshot{}, fmt.Errorf("world: webhook %s: %w", req.Op, redact.TransportError(err))
	}
	var out struct {
		State struct {
			Regions map[string]map[string]any `json:"regions"`
		} `json:"state"`
		Error string `json:"error"`
	}
	_ = json.Unmarshal(raw, &out)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusConflict:
		return Snapshot{}, fmt.Errorf("world: webhook %s: %w", req.Op, store.ErrConflict)
	case http.StatusUnprocessableEntity:
		return Snapshot{}, fmt.Errorf("%w: %s", ErrRejected, out.Error)
	default:
		return Snapshot{}, fmt.Errorf("world: webhook %s: HTTP %d", req.Op, resp.StatusCode)
	}
	for _, r := range req.Regions {
		if _, ok := out.State.Regions[r]; !ok {
			return Snapshot{}, fmt.Errorf("world: webhook %s: answer lacks region %q", req.Op, r)
		}
	}
	if len(out.State.Regions) != len(req.Regions) {
		return Snapshot{}, errors.New("world: webhook: answer has regions that were not asked for")
	}
	return encode(decoded{TenantID: req.TenantID, Target: req.Target, Regions: out.State.Regions})
}

// Read implements Reader.
func (w *Webhook) Read(ctx context.Context, tenantID, target string, regions []string) (Snapshot, error) {
	return w.call(ctx, webhookRequest{Op: "read", TenantID: tenantID, Target: target, Regions: regions})
}

// Plan implements Executor.
func (w *Webhook) Plan(ctx context.Context, c Change) (Snapshot, error) {
	return w.call(ctx, webhookRequest{Op: "plan", TenantID: c.TenantID, Action: c.Action, Target: c.Target, Regions: c.Regions, Parameters: c.Parameters})
}

// Apply implements Executor.
func (w *Webhook) Apply(ctx context.Context, c Change, pre Snapshot) (Snapshot, error) {
	d, err := decode(pre)
	if err != nil {
		return Snapshot{}, err
	}
	return w.call(ctx, webhookRequest{Op: "apply", TenantID: c.TenantID, Action: c.Action, Target: c.Target, Regions: c.Regions, Parameters: c.Parameters, State: map[string]any{"regions": d.Regions}})
}

// Restore implements Executor.
func (w *Webhook) Restore(ctx context.Context, c Change, pre Snapshot) (Snapshot, error) {
	d, err := decode(pre)
	if err != nil {
		return Snapshot{}, err
	}
	return w.call(ctx, webhookRequest{Op: "restore", TenantID: c.TenantID, Target: c.Target, Regions: c.Regions, State: map[string]any{"regions": d.Regions}})
}

// Router sends each tenant to its configured executor, and everyone else to Default.
type Router struct {
	Default   Executor
	PerTenant map[string]Executor
}

func (r Router) pick(tenant string) Executor {
	if e, ok := r.PerTenant[tenant]; ok {
		return e
	}
	return r.Default
}

// Read implements Reader.
func (r Router) Read(ctx context.Context, tenantID, target string, regions []string) (Snapshot, error) {
	return r.pick(tenantID).Read(ctx, tenantID, target, regions)
}

// Plan implements Executor.
func (r Router) Plan(ctx context.Context, c Change) (Snapshot, error) {
	return r.pick(c.TenantID).Plan(ctx, c)
}

// Apply implements Executor.
func (r Router) Apply(ctx context.Context, c Change, pre Snapshot) (Snapshot, error) {
	return r.pick(c.TenantID).Apply(ctx, c, pre)
}

// ApplyIn implements TxApplier for the tenants whose world is the simulated one.
func (r Router) ApplyIn(ctx context.Context, tx store.Store, c Change, pre Snapshot) (Snapshot, bool, error) {
	if ta, ok := r.pick(c.TenantID).(TxApplier); ok {
		return ta.ApplyIn(ctx, tx, c, pre)
	}
	return Snapshot{}, false, nil
}

// Restore implements Executor.
func (r Router) Restore(ctx context.Context, c Change, pre Snapshot) (Snapshot, error) {
	return r.pick(c.TenantID).Restore(ctx, c, pre)
}
