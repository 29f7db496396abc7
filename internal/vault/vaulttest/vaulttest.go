// Package vaulttest is a stand-in for Vault in tests: an httptest server speaking the
// part of Vault's HTTP API the fabric uses — KV v2 reads (GET /v1/<mount>/data/<path>)
// and token lookup-self — with X-Vault-Token checked (403 on a wrong or missing one,
// as Vault answers).
package vaulttest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Server is a fake Vault with one KV v2 mount.
type Server struct {
	*httptest.Server
	Token string
	Mount string
	// Reads counts the KV reads answered with a secret.
	Reads atomic.Int64

	mu      sync.Mutex
	secrets map[string]map[string]any
}

// New starts a fake Vault accepting token, with a KV v2 engine at mount.
func New(t testing.TB, token, mount string) *Server {
	t.Helper()
	s := &Server{Token: token, Mount: mount, secrets: map[string]map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Put stores data as the latest version of the secret at path.
func (s *Server) Put(path string, data map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[strings.Trim(path, "/")] = data
}

func errorBody(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/sys/health" { // unauthenticated, as in Vault
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"initialized": true, "sealed": false, "standby": false})
		return
	}
	if r.Header.Get("X-Vault-Token") != s.Token {
		errorBody(w, http.StatusForbidden, "permission denied")
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/v1/auth/token/lookup-self" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"id": "redacted", "policies": []string{"fabric"}}})
		return
	}
	prefix := "/v1/" + s.Mount + "/data/"
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, prefix) {
		errorBody(w, http.StatusNotFound, "no handler for route")
		return
	}
	s.mu.Lock()
	data, ok := s.secrets[strings.TrimPrefix(r.URL.Path, prefix)]
	s.mu.Unlock()
	if !ok {
		errorBody(w, http.StatusNotFound, "")
		return
	}
	s.Reads.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"request_id": "00000000-0000-0000-0000-000000000000",
		"data": map[string]any{
			"data": data,
			"metadata": map[string]any{
				"created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": false, "version": 1,
			},
		},
	})
}
