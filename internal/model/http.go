package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/decision-fabric/fabric/internal/redact"
)

// DefaultTimeout bounds one Neural Fabric call when NewHTTP gets no client.
const DefaultTimeout = 10 * time.Second

// maxResponseBytes caps what we read from the Neural Fabric: an answer is a few hundred
// bytes, and a runaway body must not exhaust memory.
const maxResponseBytes = 1 << 20

// HTTPName is the Name of the HTTP provider.
const HTTPName = "neural-fabric"

// StatusError is a non-2xx answer from the Neural Fabric. The body is not kept: it is
// the remote's text and may echo the request.
type StatusError struct {
	Op   string // "suggest" or "assess"
	Code int    // HTTP status code
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("model: %s: neural fabric answered HTTP %d %s", e.Op, e.Code, http.StatusText(e.Code))
}

type httpProvider struct {
	base   string
	client *http.Client
}

// NewHTTP returns the Neural Fabric client for baseURL (NEURAL_FABRIC_URL, e.g.
// "http://neural-fabric:8080"). It calls
//
//	POST {base}/v1/suggest  body SuggestRequest  -> 200 Suggestion
//	POST {base}/v1/assess   body AssessRequest   -> 200 Assessment
//
// with JSON bodies (snake_case fields as in the struct tags). A nil client means one
// with DefaultTimeout; the caller's context deadline applies as well, whichever is
// sooner. A non-2xx answer is a *StatusError; an answer that is not valid JSON or
// breaks the Provider contract (e.g. a probability outside [0,1]) wraps
// ErrInvalidResponse.
func NewHTTP(baseURL string, client *http.Client) Provider {
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	return &httpProvider{base: strings.TrimRight(baseURL, "/"), client: client}
}

func (p *httpProvider) Name() string { return HTTPName }

func (p *httpProvider) Suggest(ctx context.Context, r SuggestRequest) (Suggestion, error) {
	var out Suggestion
	if err := p.post(ctx, "suggest", r, &out); err != nil {
		return Suggestion{}, err
	}
	if err := validateSuggestion(out); err != nil {
		return Suggestion{}, fmt.Errorf("model: suggest: %w", err)
	}
	return out, nil
}

func (p *httpProvider) Assess(ctx context.Context, r AssessRequest) (Assessment, error) {
	var out Assessment
	if err := p.post(ctx, "assess", r, &out); err != nil {
		return Assessment{}, err
	}
	if out.Model == "" {
		out.Model = HTTPName
	}
	if err := validateAssessment(out); err != nil {
		return Assessment{}, fmt.Errorf("model: assess: %w", err)
	}
	return out, nil
}

// post sends body to {base}/v1/{op} and decodes a 2xx JSON answer into out.
func (p *httpProvider) post(ctx context.Context, op string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("model: %s: encode request: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/"+op, bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("model: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("model: %s: %w", op, redact.TransportError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes)) // keep the connection reusable
		return &StatusError{Op: op, Code: resp.StatusCode}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("model: %s: read response: %w", op, redact.TransportError(err))
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("model: %s: %w: response larger than %d bytes", op, ErrInvalidResponse, maxResponseBytes)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("model: %s: %w: %w", op, ErrInvalidResponse, err)
	}
	return nil
}
