package witness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/decision-fabric/fabric/internal/auditlog"
)

// AddCheckpointPath is tlog-witness's endpoint.
const AddCheckpointPath = "/add-checkpoint"

// maxRequest bounds an add-checkpoint request: a note and at most 64 proof hashes.
const maxRequest = 16 << 10

// maxProof bounds the hashes of a consistency proof (2 × log2 of the largest tree).
const maxProof = 128

// ParseRequest parses a tlog-witness add-checkpoint request body:
//
//	old <size>
//	<base64 consistency proof hash, one per line>
//	<empty line>
//	<checkpoint note>
func ParseRequest(body []byte) (oldSize uint64, consistency [][]byte, signed []byte, err error) {
	if len(body) > maxRequest {
		return 0, nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformed, maxRequest)
	}
	head, signed, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return 0, nil, nil, fmt.Errorf("%w: no empty line before the checkpoint", ErrMalformed)
	}
	lines := strings.Split(string(head), "\n")
	size, ok := strings.CutPrefix(lines[0], "old ")
	if !ok {
		return 0, nil, nil, fmt.Errorf("%w: the first line is not \"old <size>\"", ErrMalformed)
	}
	oldSize, err = strconv.ParseUint(size, 10, 64)
	if err != nil || strconv.FormatUint(oldSize, 10) != size {
		return 0, nil, nil, fmt.Errorf("%w: old size %q is not a canonical decimal", ErrMalformed, size)
	}
	if len(lines)-1 > maxProof {
		return 0, nil, nil, fmt.Errorf("%w: more than %d proof hashes", ErrMalformed, maxProof)
	}
	for _, l := range lines[1:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != 32 {
			return 0, nil, nil, fmt.Errorf("%w: a proof line is not the base64 of a 32-byte hash", ErrMalformed)
		}
		consistency = append(consistency, h)
	}
	return oldSize, consistency, signed, nil
}

// FormatRequest is the add-checkpoint request body ParseRequest reads.
func FormatRequest(oldSize uint64, consistency [][]byte, signed []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", oldSize)
	for _, h := range consistency {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteByte('\n')
	b.Write(signed)
	return b.Bytes()
}

// Handler serves tlog-witness's POST /add-checkpoint: 200 with the
// cosignature line(s); 409 with the witness's size (text/x.tlog.size) when
// the old size is not its last; 422 when the checkpoint is not consistent;
// 403 when it is not signed by the log's key; 400 when it does not parse.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AddCheckpointPath, func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxRequest))
		if err != nil {
			http.Error(rw, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		old, consistency, signed, err := ParseRequest(body)
		if err == nil {
			var sig []byte
			if sig, err = w.Add(r.Context(), old, consistency, signed); err == nil {
				rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = rw.Write(sig) // the client went away: nothing left to tell it
				return
			}
		}
		var conflict *ConflictError
		switch {
		case errors.As(err, &conflict):
			rw.Header().Set("Content-Type", "text/x.tlog.size")
			rw.WriteHeader(http.StatusConflict)
			fmt.Fprintf(rw, "%d\n", conflict.Size)
		case errors.Is(err, ErrInconsistent):
			http.Error(rw, err.Error(), http.StatusUnprocessableEntity)
		case errors.Is(err, ErrBadSignature):
			http.Error(rw, err.Error(), http.StatusForbidden)
		case errors.Is(err, ErrMalformed):
			http.Error(rw, err.Error(), http.StatusBadRequest)
		default:
			http.Error(rw, "internal error", http.StatusInternalServerError)
		}
	})
	return mux
}

// adder is a witness reached in process (Witness) or over HTTP (remote).
type adder interface {
	Add(ctx context.Context, oldSize uint64, consistency [][]byte, signed []byte) ([]byte, error)
}

// Client sends the auditor's checkpoints to a witness; it implements
// auditlog.Cosigner. It remembers the witness's size per log and, on a
// conflict, retries once from the size the witness names.
type Client struct {
	w        adder
	verifier note.Verifier

	mu    sync.Mutex
	sizes map[string]uint64 // origin -> the witness's last size, as far as known
}

// NewClient returns a client of the witness at baseURL (its add-checkpoint
// endpoint is baseURL + AddCheckpointPath) whose cosignatures witnessKey (a
// note verifier key) verifies. Requests time out after 10 s.
func NewClient(baseURL, witnessKey string) (*Client, error) {
	v, err := auditlog.NewWitnessVerifier(strings.TrimSpace(witnessKey))
	if err != nil {
		return nil, err
	}
	return &Client{w: &remote{url: strings.TrimSuffix(baseURL, "/") + AddCheckpointPath, http: &http.Client{Timeout: 10 * time.Second}},
		verifier: v, sizes: map[string]uint64{}}, nil
}

// Local returns a client of a witness running in this process (simulation and tests).
func Local(w *Witness) *Client {
	return &Client{w: w, verifier: w.Verifier(), sizes: map[string]uint64{}}
}

// Cosign implements auditlog.Cosigner.
func (c *Client) Cosign(ctx context.Context, cp *auditlog.Checkpoint, consistency func(from uint64) ([][]byte, error)) ([]byte, error) {
	c.mu.Lock()
	old := c.sizes[cp.Origin]
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if old > cp.Size {
			return nil, fmt.Errorf("%w: the witness has cosigned size %d, more than this checkpoint's %d", ErrInconsistent, old, cp.Size)
		}
		var pf [][]byte
		if old > 0 {
			var err error
			if pf, err = consistency(old); err != nil {
				return nil, err
			}
		}
		sig, err := c.w.Add(ctx, old, pf, cp.Note)
		var conflict *ConflictError
		if errors.As(err, &conflict) && attempt == 0 {
			old = conflict.Size
			continue
		}
		if err != nil {
			return nil, err
		}
		cosigned := append(append([]byte{}, cp.Note...), sig...)
		if _, err := note.Open(cosigned, note.VerifierList(c.verifier)); err != nil {
			return nil, fmt.Errorf("witness: the cosignature returned does not verify: %w", err)
		}
		c.mu.Lock()
		c.sizes[cp.Origin] = cp.Size
		c.mu.Unlock()
		return cosigned, nil
	}
}

// remote is a witness over HTTP.
type remote struct {
	url  string
	http *http.Client
}

func (r *remote) Add(ctx context.Context, oldSize uint64, consistency [][]byte, signed []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(FormatRequest(oldSize, consistency, signed)))
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRequest))
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return body, nil
	case http.StatusConflict:
		line, _, _ := bufio.NewReader(bytes.NewReader(body)).ReadLine()
		size, err := strconv.ParseUint(string(line), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: 409 without a size", ErrMalformed)
		}
		return nil, &ConflictError{Size: size}
	case http.StatusUnprocessableEntity:
		return nil, fmt.Errorf("%w: %s", ErrInconsistent, firstLine(body))
	case http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s", ErrBadSignature, firstLine(body))
	}
	return nil, fmt.Errorf("witness: %s: %s", resp.Status, firstLine(body))
}

// firstLine is at most 200 bytes of the first line of a response body.
func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	if len(line) > 200 {
		line = line[:200]
	}
	return string(line)
}
