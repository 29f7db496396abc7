package precheck

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// localPostgresDSN is the Postgres used by the "everything healthy" cases.
const localPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	postgresOnce sync.Once
	postgresErr  error
)

// requirePostgres skips the test when the local Postgres does not answer,
// unless FABRIC_REQUIRE_POSTGRES=1, in which case it fails.
func requirePostgres(t *testing.T) {
	t.Helper()
	postgresOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, localPostgresDSN)
		if err != nil {
			postgresErr = err
			return
		}
		postgresErr = conn.Ping(ctx)
		_ = conn.Close(ctx)
	})
	if postgresErr != nil {
		if os.Getenv("FABRIC_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("local Postgres required (FABRIC_REQUIRE_POSTGRES=1) but unreachable: %v", postgresErr)
		}
		t.Skipf("local Postgres at 127.0.0.1:5432 unreachable (%v); set FABRIC_REQUIRE_POSTGRES=1 to fail instead", postgresErr)
	}
}

// closedAddr returns a 127.0.0.1 address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// statusServer answers every request on path with code (other paths: 404).
func statusServer(t *testing.T, path string, code int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if path != "" && r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tcpServer accepts connections on 127.0.0.1 and hands each one to handle.
// All connections are closed at cleanup.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// fakeRedis answers the first line of every connection with reply.
func fakeRedis(t *testing.T, reply string) string {
	t.Helper()
	return tcpServer(t, func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		_, _ = c.Write([]byte(reply))
	})
}

// acceptAndClose is a TCP listener standing in for a Kafka broker.
func acceptAndClose(t *testing.T) string {
	t.Helper()
	return tcpServer(t, func(c net.Conn) { _ = c.Close() })
}

// silentServer accepts connections and never answers (until cleanup).
func silentServer(t *testing.T) string {
	t.Helper()
	return tcpServer(t, func(c net.Conn) {
		buf := make([]byte, 1024)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	})
}

// writePEM writes a PEM file with one block and returns its path.
func writePEM(t *testing.T, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cosign.key")
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// cosignKeyFile writes a cosign-format (encrypted sigstore) key file.
func cosignKeyFile(t *testing.T) string {
	t.Helper()
	blob := make([]byte, 64)
	_, err := rand.Read(blob)
	require.NoError(t, err)
	return writePEM(t, "ENCRYPTED SIGSTORE PRIVATE KEY", blob)
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func pkcs8DER(t *testing.T) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(ecKey(t))
	require.NoError(t, err)
	return der
}

// healthyEnv starts every dependency except Postgres (which is the local
// one) and returns an Env under which every check passes.
func healthyEnv(t *testing.T) Env {
	t.Helper()
	registry := statusServer(t, "", http.StatusOK)
	vault := statusServer(t, "/v1/sys/health", http.StatusOK)
	prom := statusServer(t, "/-/ready", http.StatusOK)
	neural := statusServer(t, "/health", http.StatusOK)
	quantum := statusServer(t, "", http.StatusOK)
	return Env{
		PostgresDSN:       localPostgresDSN,
		VaultAddr:         vault.URL,
		CosignKeyPath:     cosignKeyFile(t),
		GlobalRegistryURL: registry.URL + "/v2/",
		FederationToken:   "tok-abc",
		RedisURL:          "redis://" + fakeRedis(t, "+PONG\r\n") + "/0",
		KafkaURL:          "kafka://" + acceptAndClose(t),
		PromURL:           prom.URL,
		NeuralFabricURL:   neural.URL,
		QuantumProvider:   quantum.URL,
	}
}

// checkByName returns the named check of r.
func checkByName(t *testing.T, r Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check named %q in report", name)
	return Check{}
}

// mapLookup adapts a map to the FromEnviron lookup signature.
func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}
