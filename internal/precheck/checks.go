package precheck

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/decision-fabric/fabric/internal/kafkaurl"
	"github.com/decision-fabric/fabric/internal/vault"
)

// maxKeyFileSize bounds how much of COSIGN_KEY_PATH is read.
const maxKeyFileSize = 1 << 20

// maxBodyDrain bounds how much of an HTTP answer body is read and discarded.
const maxBodyDrain = 64 << 10

const userAgent = "decision-fabric-precheck/I.4"

// checker holds what the individual checks share.
type checker struct {
	client *http.Client
	va     vaultAccess
}

// vaultAccess is how the precheck reads a key kept in Vault: the fabric's own address,
// token (or token file) and KV v2 mount.
type vaultAccess struct {
	Addr, Token, TokenFile, KVMount string
}

// newDefaultHTTPClient returns a client that does not follow redirects: a 3xx
// answer already proves that the server is there, and following it could
// lead anywhere.
func newDefaultHTTPClient() *http.Client {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
	}
	tr.DisableKeepAlives = true
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// parseHTTPURL accepts absolute http(s) URLs with a host.
func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("not an http:// or https:// URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("URL has no host")
	}
	return u, nil
}

// withPath returns u with p appended to its path.
func withPath(u *url.URL, p string) *url.URL {
	c := *u
	c.Path = strings.TrimRight(c.Path, "/") + p
	c.RawPath = ""
	c.Fragment, c.RawFragment = "", ""
	return &c
}

// httpGet performs a GET bounded by ctx and returns the status code.
func (ck *checker) httpGet(ctx context.Context, u *url.URL) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, errors.New("cannot build request")
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := ck.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyDrain))
	return resp.StatusCode, nil
}

// describeErr turns a network error into a short text. The text may contain
// host names and addresses but Run scrubs secrets from it anyway.
func describeErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within the timeout"
	case errors.Is(err, context.Canceled):
		return "check cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without an answer"
	case errors.As(err, &dnsErr):
		return "cannot resolve host " + dnsErr.Name
	case errors.As(err, &netErr) && netErr.Timeout():
		return "no answer within the timeout"
	}
	return err.Error()
}

// answeredStatus classifies an HTTP answer of a server whose mere answer
// proves reachability (global registry, quantum provider): 2xx, 3xx, 401 and
// 403 are fine, 5xx means the server is down, other codes mean a wrong URL.
func answeredStatus(what string, code int) (Status, string) {
	switch {
	case code >= 200 && code < 400:
		return StatusOK, fmt.Sprintf("%s answered HTTP %d", what, code)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return StatusOK, fmt.Sprintf("%s answered HTTP %d (reachable; credentials are checked later)", what, code)
	case code >= 500:
		return StatusUnreachable, fmt.Sprintf("%s answered HTTP %d (server error)", what, code)
	default:
		return StatusInvalid, fmt.Sprintf("%s answered HTTP %d; check the URL", what, code)
	}
}

// ---------------------------------------------------------------- postgres

var pgKVPassword = regexp.MustCompile(`(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)

// postgresSecrets extracts every password candidate of a DSN, whether or not
// it parses, so that the report can be scrubbed.
func postgresSecrets(dsn string) []string {
	if dsn == "" {
		return nil
	}
	var out []string
	if cfg, err := pgx.ParseConfig(dsn); err == nil {
		out = append(out, cfg.Password)
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	for _, m := range pgKVPassword.FindAllStringSubmatch(dsn, -1) {
		v := m[1]
		out = append(out, v)
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			out = append(out, v[1:len(v)-1])
		}
	}
	// Unparseable or opaque DSNs ("user:pw@host"): treat userinfo-like
	// text as secret, as redactLoose does.
	if u, err := url.Parse(dsn); err != nil || u.Opaque != "" {
		tmp := newSecretSet()
		tmp.addLooseUserinfo(dsn)
		for v := range tmp.values {
			out = append(out, v)
		}
	}
	return out
}

// postgresTarget renders a parsed config without its password.
func postgresTarget(cfg *pgx.ConnConfig) string {
	var b strings.Builder
	b.WriteString("postgres://")
	if cfg.User != "" {
		b.WriteString(url.User(cfg.User).String())
		if cfg.Password != "" {
			b.WriteString(":" + Redacted)
		}
		b.WriteByte('@')
	}
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		b.WriteString("[" + host + "]:" + strconv.Itoa(int(cfg.Port)))
	} else {
		b.WriteString(net.JoinHostPort(host, strconv.Itoa(int(cfg.Port))))
	}
	b.WriteByte('/')
	b.WriteString(url.PathEscape(cfg.Database))
	return b.String()
}

func (ck *checker) postgres(ctx context.Context, dsn string) Check {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN; it is deliberately not shown.
		return Check{Status: StatusInvalid, Detail: "cannot parse " + EnvPostgresDSN + " as a Postgres connection string (URL or key=value)"}
	}
	target := postgresTarget(cfg)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return Check{Status: StatusInvalid, Target: target,
				Detail: fmt.Sprintf("server reachable but refused the session: SQLSTATE %s %s", pgErr.Code, pgErr.Message)}
		}
		return Check{Status: StatusUnreachable, Target: target, Detail: "cannot connect: " + describeErr(unwrapConnect(err))}
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if err := conn.Ping(ctx); err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "connected but ping failed: " + describeErr(err)}
	}
	detail := "connected and pinged"
	if v := conn.PgConn().ParameterStatus("server_version"); v != "" {
		detail += " (server version " + v + ")"
	}
	return Check{Status: StatusOK, Target: target, Detail: detail}
}

// unwrapConnect strips pgconn's "failed to connect to `user=... database=...`"
// wrapper, whose text repeats what Target already shows.
func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		if inner := ce.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// ------------------------------------------------------------------- vault

// vaultHealthStates are the documented answers of /v1/sys/health.
var vaultHealthStates = map[int]string{
	200: "initialized, unsealed and active",
	429: "unsealed and standby",
	472: "disaster recovery secondary, active",
	473: "performance standby",
	501: "not initialized",
	503: "sealed",
}

func (ck *checker) vault(ctx context.Context, addr string) Check {
	base, err := parseHTTPURL(addr)
	if err != nil {
		return Check{Status: StatusInvalid, Detail: EnvVaultAddr + ": " + err.Error()}
	}
	u := withPath(base, "/v1/sys/health")
	target := RedactURL(u.String())
	code, err := ck.httpGet(ctx, u)
	if err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "Vault health endpoint: " + describeErr(err)}
	}
	if state, ok := vaultHealthStates[code]; ok {
		return Check{Status: StatusOK, Target: target, Detail: fmt.Sprintf("Vault answered HTTP %d: %s", code, state)}
	}
	return Check{Status: StatusInvalid, Target: target,
		Detail: fmt.Sprintf("answered HTTP %d, which is not a Vault health state; does %s point at Vault?", code, EnvVaultAddr)}
}

// ------------------------------------------------------------------ cosign

// acceptedKeyBlocks are the PEM block types accepted in COSIGN_KEY_PATH.
var acceptedKeyBlocks = []string{
	"ENCRYPTED SIGSTORE PRIVATE KEY",
	"ENCRYPTED COSIGN PRIVATE KEY",
	"PUBLIC KEY",
	"PRIVATE KEY",
	"EC PRIVATE KEY",
}

// cosignVault reads the signing key kept in Vault (integrations.vault.cosign_key_path,
// field "key") with the fabric's Vault token and applies the acceptance of the file
// check (acceptKeyBlock). A key that cannot be read (no such secret or field, token
// refused, Vault down) or is not a usable key is invalid (unreachable when the
// deadline ran out); with no token it is unverified. Neither the key nor the token
// appears in the result: vault's errors name the mount, path, field and HTTP status.
func (ck *checker) cosignVault(ctx context.Context, path string) Check {
	mount := ck.va.KVMount
	if mount == "" {
		mount = vault.DefaultMount
	}
	target := "vault:" + strings.Trim(mount, "/") + "/" + strings.Trim(path, "/")
	if ck.va.Token == "" && ck.va.TokenFile == "" {
		return Check{Status: StatusUnverified, Target: target,
			Detail: "signing key in Vault not read: the precheck has no Vault token (VAULT_TOKEN or integrations.vault.token_file)"}
	}
	c, err := vault.New(vault.Options{Addr: ck.va.Addr, Token: ck.va.Token, TokenFile: ck.va.TokenFile, Mount: mount})
	if err != nil {
		return Check{Status: StatusInvalid, Target: target, Detail: err.Error()}
	}
	data, err := c.Field(ctx, path, "key")
	if err != nil {
		status := StatusInvalid
		if ctx.Err() != nil {
			status = StatusUnreachable
		}
		return Check{Status: status, Target: target, Detail: "signing key not readable: " + err.Error()}
	}
	defer clear(data)
	status, detail := acceptKeyPEM(data)
	if status == StatusOK {
		detail = "key read from Vault (field \"key\"), " + detail
	} else {
		detail = "field \"key\" in Vault: " + detail
	}
	return Check{Status: status, Target: target, Detail: detail}
}

func (ck *checker) cosign(_ context.Context, path string) Check {
	target := path
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return Check{Status: StatusInvalid, Target: target, Detail: "key file does not exist"}
	case errors.Is(err, fs.ErrPermission):
		return Check{Status: StatusInvalid, Target: target, Detail: "key file is not accessible (permission denied)"}
	case err != nil:
		return Check{Status: StatusInvalid, Target: target, Detail: "cannot stat key file"}
	case !fi.Mode().IsRegular():
		// Never open FIFOs or devices: reading them could block forever.
		return Check{Status: StatusInvalid, Target: target, Detail: "not a regular file"}
	case fi.Size() > maxKeyFileSize:
		return Check{Status: StatusInvalid, Target: target, Detail: "file is too large to be a key (over 1 MiB)"}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return Check{Status: StatusInvalid, Target: target, Detail: "key file is not readable (permission denied)"}
		}
		return Check{Status: StatusInvalid, Target: target, Detail: "key file is not readable"}
	}
	defer clear(data)

	status, detail := acceptKeyPEM(data)
	if status == StatusOK {
		detail = "readable key file, " + detail
	}
	return Check{Status: status, Target: target, Detail: detail}
}

// acceptKeyPEM finds the first usable cosign key block in data (acceptKeyBlock); the
// detail names the block type, never its content.
func acceptKeyPEM(data []byte) (Status, string) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if ok, note := acceptKeyBlock(block); ok {
			return StatusOK, fmt.Sprintf("PEM block %s%s", block.Type, note)
		}
	}
	return StatusInvalid, "no usable PEM block; expected one of: " + strings.Join(acceptedKeyBlocks, ", ")
}

// acceptKeyBlock reports whether block is a usable cosign key. The key
// material is parsed only to validate it and is never reported.
func acceptKeyBlock(block *pem.Block) (bool, string) {
	switch block.Type {
	case "ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY":
		return len(block.Bytes) > 0, ""
	case "PUBLIC KEY":
		_, err := x509.ParsePKIXPublicKey(block.Bytes)
		return err == nil, " (verification only)"
	case "PRIVATE KEY":
		_, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		return err == nil, " (unencrypted private key: prefer an encrypted cosign key)"
	case "EC PRIVATE KEY":
		_, err := x509.ParseECPrivateKey(block.Bytes)
		return err == nil, " (unencrypted private key: prefer an encrypted cosign key)"
	}
	return false, ""
}

// --------------------------------------------------------- global registry

func (ck *checker) registry(ctx context.Context, raw string) Check {
	u, err := parseHTTPURL(raw)
	if err != nil {
		return Check{Status: StatusInvalid, Detail: EnvGlobalRegistryURL + ": " + err.Error()}
	}
	target := RedactURL(u.String())
	code, err := ck.httpGet(ctx, u)
	if err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "registry did not answer: " + describeErr(err)}
	}
	st, detail := answeredStatus("registry", code)
	return Check{Status: st, Target: target, Detail: detail}
}

// -------------------------------------------------------- federation token

func (ck *checker) federationToken(_ context.Context, _ string) Check {
	// Presence only: neither the value nor its length is ever reported.
	return Check{Status: StatusOK, Detail: "set"}
}

// ------------------------------------------------------------------- redis

// parseRedisURL returns the dial address, whether TLS is required and a
// redacted target.
func parseRedisURL(raw string) (addr string, useTLS bool, target string, err error) {
	if !strings.Contains(raw, "://") {
		raw = "redis://" + raw
	}
	u, perr := url.Parse(raw)
	if perr != nil {
		return "", false, "", errors.New("not a valid redis:// URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "redis":
	case "rediss":
		useTLS = true
	default:
		return "", false, "", errors.New("scheme must be redis:// or rediss://")
	}
	host := u.Hostname()
	if host == "" {
		return "", false, "", errors.New("URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	if n, perr := strconv.Atoi(port); perr != nil || n <= 0 || n > 65535 {
		return "", false, "", errors.New("invalid port")
	}
	return net.JoinHostPort(host, port), useTLS, RedactURL(raw), nil
}

func dialContext(ctx context.Context, addr string, useTLS bool) (net.Conn, error) {
	if useTLS {
		host, _, _ := net.SplitHostPort(addr)
		d := &tls.Dialer{Config: &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}}
		return d.DialContext(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (ck *checker) redis(ctx context.Context, raw string) Check {
	addr, useTLS, target, err := parseRedisURL(raw)
	if err != nil {
		return Check{Status: StatusInvalid, Detail: EnvRedisURL + ": " + err.Error()}
	}
	conn, err := dialContext(ctx, addr, useTLS)
	if err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "cannot connect: " + describeErr(err)}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Stop the exchange as soon as the context ends, deadline or not.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	// PING is sent without AUTH on purpose: the password never leaves the
	// process, and -NOAUTH already proves that Redis is there.
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "cannot send PING: " + describeErr(err)}
	}
	line, err := bufio.NewReaderSize(io.LimitReader(conn, 512), 512).ReadString('\n')
	if err != nil && line == "" {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = context.DeadlineExceeded
		}
		return Check{Status: StatusUnreachable, Target: target, Detail: "no reply to PING: " + describeErr(err)}
	}
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "+PONG"):
		return Check{Status: StatusOK, Target: target, Detail: "PING answered +PONG"}
	case strings.HasPrefix(line, "-NOAUTH"):
		return Check{Status: StatusOK, Target: target, Detail: "reachable; server requires authentication (-NOAUTH)"}
	default:
		return Check{Status: StatusInvalid, Target: target, Detail: "unexpected reply to PING; is this a Redis server?"}
	}
}

// ------------------------------------------------------------------- kafka

// parseKafkaBrokers splits KAFKA_URL into host:port addresses (internal/kafkaurl, as
// the event relay reads it).
func parseKafkaBrokers(raw string) (addrs []string, invalid int) {
	t, invalid := kafkaurl.Parse(raw)
	return t.Brokers, invalid
}

func (ck *checker) kafka(ctx context.Context, raw string) Check {
	addrs, invalid := parseKafkaBrokers(raw)
	if len(addrs) == 0 {
		return Check{Status: StatusInvalid, Detail: EnvKafkaURL + ": no host:port broker found (expected host:port[,host:port] with optional kafka:// or kafka+tls:// prefix)"}
	}
	target := strings.Join(addrs, ",")
	type result struct {
		ok  bool
		err error
	}
	results := make(chan result, len(addrs))
	for _, a := range addrs {
		go func(a string) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", a)
			if err == nil {
				_ = c.Close()
			}
			results <- result{ok: err == nil, err: err}
		}(a)
	}
	okCount := 0
	var firstErr error
	for range addrs {
		r := <-results
		if r.ok {
			okCount++
		} else if firstErr == nil {
			firstErr = r.err
		}
	}
	suffix := ""
	if invalid > 0 {
		suffix = fmt.Sprintf("; %d malformed entries ignored", invalid)
	}
	if okCount == 0 {
		return Check{Status: StatusUnreachable, Target: target,
			Detail: fmt.Sprintf("no broker accepted a TCP connection (%s)%s", describeErr(firstErr), suffix)}
	}
	return Check{Status: StatusOK, Target: target,
		Detail: fmt.Sprintf("%d/%d brokers accepted a TCP connection%s", okCount, len(addrs), suffix)}
}

// -------------------------------------------------------------- prometheus

func (ck *checker) prometheus(ctx context.Context, raw string) Check {
	base, err := parseHTTPURL(raw)
	if err != nil {
		return Check{Status: StatusInvalid, Detail: EnvPromURL + ": " + err.Error()}
	}
	u := withPath(base, "/-/ready")
	target := RedactURL(u.String())
	code, err := ck.httpGet(ctx, u)
	if err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "Prometheus did not answer: " + describeErr(err)}
	}
	if code != http.StatusOK {
		return Check{Status: StatusUnreachable, Target: target, Detail: fmt.Sprintf("Prometheus not ready: HTTP %d", code)}
	}
	return Check{Status: StatusOK, Target: target, Detail: "Prometheus ready (HTTP 200)"}
}

// ----------------------------------------------------------- neural fabric

func (ck *checker) neuralFabric(ctx context.Context, raw string) Check {
	base, err := parseHTTPURL(raw)
	if err != nil {
		return Check{Status: StatusInvalid, Detail: EnvNeuralFabricURL + ": " + err.Error()}
	}
	u := withPath(base, "/health")
	target := RedactURL(u.String())
	code, err := ck.httpGet(ctx, u)
	if err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "Neural Fabric did not answer: " + describeErr(err)}
	}
	if code < 200 || code > 299 {
		return Check{Status: StatusUnreachable, Target: target, Detail: fmt.Sprintf("Neural Fabric unhealthy: HTTP %d", code)}
	}
	return Check{Status: StatusOK, Target: target, Detail: fmt.Sprintf("Neural Fabric healthy (HTTP %d)", code)}
}

// -------------------------------------------------------- quantum provider

func (ck *checker) quantum(ctx context.Context, raw string) Check {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "sim", "simulated":
		return Check{Status: StatusSimulated, Detail: "configured as simulated"}
	}
	lower := strings.ToLower(raw)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return Check{Status: StatusInvalid, Detail: EnvQuantumProvider + " must be sim, simulated or an http(s) URL"}
	}
	u, err := parseHTTPURL(raw)
	if err != nil {
		return Check{Status: StatusInvalid, Detail: EnvQuantumProvider + ": " + err.Error()}
	}
	target := RedactURL(u.String())
	code, err := ck.httpGet(ctx, u)
	if err != nil {
		return Check{Status: StatusUnreachable, Target: target, Detail: "quantum provider did not answer: " + describeErr(err)}
	}
	st, detail := answeredStatus("quantum provider", code)
	return Check{Status: st, Target: target, Detail: detail}
}
