package notify

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/redact"
)

const testPassword = "pw-Zq7-s3cr3t"

func TestSMTPConfigValidation(t *testing.T) {
	good := SMTPConfig{Host: "127.0.0.1", Port: 2525, From: "Decision Fabric <hil@example.com>", To: []string{"ops@example.com"}, TLS: SMTPTLSNone}
	if _, err := NewSMTP(good); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, mutate := range map[string]func(*SMTPConfig){
		"no host":                 func(c *SMTPConfig) { c.Host = "" },
		"host with slash":         func(c *SMTPConfig) { c.Host = "mail.example.com/x" },
		"bad tls":                 func(c *SMTPConfig) { c.TLS = "ssl3" },
		"plain text to a remote":  func(c *SMTPConfig) { c.Host = "mail.example.com" },
		"plain text to public ip": func(c *SMTPConfig) { c.Host = "192.0.2.1" },
		"port out of range":       func(c *SMTPConfig) { c.Port = 70000 },
		"negative timeout":        func(c *SMTPConfig) { c.Timeout = -time.Second },
		"bad from":                func(c *SMTPConfig) { c.From = "not an address" },
		"no recipients":           func(c *SMTPConfig) { c.To = nil },
		"bad recipient":           func(c *SMTPConfig) { c.To = []string{"ops@example.com", "ops at example"} },
		"password without user":   func(c *SMTPConfig) { c.Username = "" },
		"user without password":   func(c *SMTPConfig) { c.Password = "" },
	} {
		c := good
		c.Password = testPassword // present in every case, must never be echoed
		c.Username = "hil"
		mutate(&c)
		_, err := NewSMTP(c)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), testPassword) {
			t.Errorf("%s: error holds the password: %v", name, err)
		}
	}
	// The default TLS mode is starttls, which is fine for a remote host.
	c := good
	c.Host, c.TLS = "mail.example.com", ""
	s, err := NewSMTP(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.TLS != SMTPTLSStartTLS || s.Name() != "smtp" {
		t.Errorf("defaults: TLS %q, name %q", s.cfg.TLS, s.Name())
	}
}

func TestSMTPMessageIDIsDeterministic(t *testing.T) {
	a, b := MessageID("01J/request"), MessageID("01J/request")
	if a != b {
		t.Fatalf("same event, two ids: %s %s", a, b)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}@decision-fabric$`).MatchString(a) {
		t.Errorf("malformed Message-ID %q", a)
	}
	// printf '%s' 01J/request | sha256sum | cut -c1-32
	if a != "277bca2ccaf2b9780f14c4aea40d0d50@decision-fabric" {
		t.Errorf("Message-ID %q is not the sha256 of the event id", a)
	}
	if MessageID("01J/reminder/1") == a {
		t.Error("two events share a Message-ID")
	}
}

// mailpitSMTP returns an SMTP channel that sends to mp in plain text.
func mailpitSMTP(t *testing.T, mp *mailpit, to ...string) *SMTP {
	t.Helper()
	if len(to) == 0 {
		to = []string{"approvers@example.com"}
	}
	s, err := NewSMTP(SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, From: "Decision Fabric <hil@example.com>", To: to, TLS: SMTPTLSNone, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSMTPMailpitDelivery(t *testing.T) {
	// --ignore-duplicate-ids: mailpit, as a receiver, drops a second message with
	// a Message-ID it already holds, which is how a retried event is recognised.
	mp := startMailpit(t, "--ignore-duplicate-ids")
	s := mailpitSMTP(t, mp, "approvers@example.com", "oncall@example.net")
	ctx := context.Background()

	req := validMessage()
	resolved := validMessage()
	resolved.EventID, resolved.Kind, resolved.Outcome, resolved.ApprovalsNeeded = "01JEXAMPLE0000000000000000/resolved", KindResolved, "APPROVED", 0
	pii := validMessage()
	pii.EventID, pii.Kind = "01JEXAMPLE0000000000000000/reminder/1", KindReminder
	pii.Summary = "restart db, ask alice.smith@example.org"

	if err := s.Send(ctx, req); err != nil {
		t.Fatal(err)
	}
	// A retry of the same event after a crash: same Message-ID.
	if err := s.Send(ctx, req); err != nil {
		t.Fatal(err)
	}
	err := s.Send(ctx, pii)
	var perm *PermanentError
	if !errors.As(err, &perm) || !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("a summary with an e-mail address: got %v, want a permanent ErrInvalidMessage", err)
	}
	if err := s.Send(ctx, resolved); err != nil {
		t.Fatal(err)
	}

	// Exactly one message per sent EventID: the retry is recognised, the refused
	// one never arrived.
	mp.WaitFor(t, 2)
	time.Sleep(300 * time.Millisecond) // anything late would show now
	got := mp.WaitFor(t, 2)
	byEvent := map[string]mailpitSummary{}
	for _, sum := range got {
		h := mp.Headers(t, sum.ID)
		ev := h[HeaderEvent]
		if len(ev) != 1 {
			t.Fatalf("message %s has %s %q", sum.ID, HeaderEvent, ev)
		}
		if _, dup := byEvent[ev[0]]; dup {
			t.Fatalf("two messages for event %s", ev[0])
		}
		byEvent[ev[0]] = sum
	}
	for _, m := range []Message{req, resolved} {
		sum, ok := byEvent[m.EventID]
		if !ok {
			t.Fatalf("no message for event %s (got %v)", m.EventID, byEvent)
		}
		want, err := Render(m)
		if err != nil {
			t.Fatal(err)
		}
		full := mp.Message(t, sum.ID)
		if full.MessageID != MessageID(m.EventID) {
			t.Errorf("%s: Message-ID %q, want %q", m.EventID, full.MessageID, MessageID(m.EventID))
		}
		if full.Subject != want.Subject {
			t.Errorf("%s: subject %q, want %q", m.EventID, full.Subject, want.Subject)
		}
		if strings.TrimRight(strings.ReplaceAll(full.Text, "\r\n", "\n"), "\n") != strings.TrimRight(want.Text, "\n") {
			t.Errorf("%s: body\n got %q\nwant %q", m.EventID, full.Text, want.Text)
		}
		if full.HTML != "" {
			t.Errorf("%s: has an HTML part: %q", m.EventID, full.HTML)
		}
		if full.From.Address != "hil@example.com" || len(full.To) != 2 || full.To[0].Address != "approvers@example.com" || full.To[1].Address != "oncall@example.net" {
			t.Errorf("%s: from %v to %v", m.EventID, full.From, full.To)
		}
		h := mp.Headers(t, sum.ID)
		if d, err := time.Parse(time.RFC1123Z, strings.Join(h["Date"], "")); err != nil || time.Since(d) > time.Minute {
			t.Errorf("%s: Date %q (%v)", m.EventID, h["Date"], err)
		}
		// No personal data in what an approver reads (From/To are configuration).
		for name, v := range map[string]string{"subject": full.Subject, "text": full.Text, "message-id": full.MessageID, "event": h[HeaderEvent][0]} {
			if redact.String(v) != v {
				t.Errorf("%s: %s holds personal data: %q", m.EventID, name, v)
			}
		}
	}
	for _, sum := range got {
		if strings.Contains(sum.Subject, "alice") {
			t.Errorf("the refused message arrived: %+v", sum)
		}
	}
}

func TestSMTPMailpitRetryKeepsMessageID(t *testing.T) {
	// Without duplicate suppression both copies arrive: they carry one Message-ID.
	mp := startMailpit(t)
	s := mailpitSMTP(t, mp)
	m := validMessage()
	for range 2 {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := mp.WaitFor(t, 2)
	if got[0].MessageID != MessageID(m.EventID) || got[1].MessageID != got[0].MessageID {
		t.Errorf("Message-IDs %q %q, want both %q", got[0].MessageID, got[1].MessageID, MessageID(m.EventID))
	}
}

func TestSMTPMailpitHeaderInjection(t *testing.T) {
	mp := startMailpit(t)
	s := mailpitSMTP(t, mp)
	m := validMessage()
	m.EventID = "01JEXAMPLE0000000000000000/request\r\nX-Injected: yes"
	m.ProposalID = "01JEXAMPLE\r\nX-Injected-Subject: yes"
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := mp.WaitFor(t, 1)
	h := mp.Headers(t, got[0].ID)
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-injected") {
			t.Errorf("header injected: %s: %q", k, h[k])
		}
	}
	if ev := strings.Join(h[HeaderEvent], "|"); ev != `01JEXAMPLE0000000000000000/request\u000d\u000aX-Injected: yes` {
		t.Errorf("%s = %q, want the escaped event id", HeaderEvent, ev)
	}
	if got[0].MessageID != MessageID(m.EventID) {
		t.Errorf("Message-ID %q", got[0].MessageID)
	}
}

func TestSMTPMailpitStartTLSWithAuth(t *testing.T) {
	dir := t.TempDir()
	pool, certFile, keyFile := selfSignedCert(t, dir)
	mp := startMailpit(t, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile,
		"--smtp-require-starttls", "--smtp-auth-accept-any")
	s, err := NewSMTP(SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, From: "hil@example.com", To: []string{"approvers@example.com"},
		Username: "hil", Password: testPassword, Timeout: 10 * time.Second}) // TLS defaults to starttls
	if err != nil {
		t.Fatal(err)
	}
	// Without trusting the server's certificate the send fails (retryable) and
	// nothing is delivered.
	err = s.Send(context.Background(), validMessage())
	var perm *PermanentError
	if err == nil || errors.As(err, &perm) {
		t.Fatalf("untrusted certificate: got %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Errorf("error holds the password: %v", err)
	}
	s.tlsConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if err := s.Send(context.Background(), validMessage()); err != nil {
		t.Fatal(err)
	}
	got := mp.WaitFor(t, 1)
	if got[0].MessageID != MessageID(validMessage().EventID) {
		t.Errorf("Message-ID %q", got[0].MessageID)
	}
}

func TestSMTPMailpitPlainServerRefusedWhenStartTLSRequired(t *testing.T) {
	mp := startMailpit(t) // offers no STARTTLS
	s, err := NewSMTP(SMTPConfig{Host: "127.0.0.1", Port: mp.SMTPPort, From: "hil@example.com", To: []string{"approvers@example.com"}, TLS: SMTPTLSStartTLS, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), validMessage()); err == nil {
		t.Fatal("sent in plain text although STARTTLS is required")
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(mp.Messages(t)); n != 0 {
		t.Errorf("mailpit received %d messages", n)
	}
}

// fakeSMTP is a minimal SMTP server: rcpt is its reply to RCPT TO, and with drop
// set it closes the connection instead of answering MAIL FROM.
type fakeSMTP struct {
	rcpt string
	drop bool
	mu   sync.Mutex
	data int // messages accepted after DATA
}

func (f *fakeSMTP) start(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
	say("220 fake ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-fake\r\n250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM"):
			if f.drop {
				return
			}
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO"):
			say(f.rcpt)
		case cmd == "DATA":
			say("354 go on")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			f.mu.Lock()
			f.data++
			f.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default: // RSET, NOOP
			say("250 ok")
		}
	}
}

func fakeChannel(t *testing.T, port int) *SMTP {
	t.Helper()
	s, err := NewSMTP(SMTPConfig{Host: "127.0.0.1", Port: port, From: "hil@example.com", To: []string{"gone@example.com"}, TLS: SMTPTLSNone, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSMTPRejectedRecipientIsPermanent(t *testing.T) {
	f := &fakeSMTP{rcpt: "550 5.1.1 <gone@example.com>: Recipient address rejected"}
	err := fakeChannel(t, f.start(t)).Send(context.Background(), validMessage())
	var perm *PermanentError
	if !errors.As(err, &perm) {
		t.Fatalf("550 on RCPT: got %v (%T), want *PermanentError", err, err)
	}
	var se *smtpError
	if !errors.As(err, &se) || se.Code() != 550 {
		t.Errorf("reply code not kept: %v", err)
	}
	if strings.Contains(err.Error(), "gone@example.com") {
		t.Errorf("error holds the echoed address: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data != 0 {
		t.Errorf("a message was accepted after the rejection")
	}
}

func TestSMTPTemporaryRejectIsRetryable(t *testing.T) {
	f := &fakeSMTP{rcpt: "451 4.3.0 try again later"}
	err := fakeChannel(t, f.start(t)).Send(context.Background(), validMessage())
	var perm *PermanentError
	if err == nil || errors.As(err, &perm) {
		t.Fatalf("451 on RCPT: got %v, want a retryable error", err)
	}
	var se *smtpError
	if !errors.As(err, &se) || se.Code() != 451 {
		t.Errorf("reply code not kept: %v", err)
	}
}

func TestSMTPDroppedConnectionIsRetryable(t *testing.T) {
	f := &fakeSMTP{rcpt: "250 ok", drop: true}
	err := fakeChannel(t, f.start(t)).Send(context.Background(), validMessage())
	var perm *PermanentError
	if err == nil || errors.As(err, &perm) {
		t.Fatalf("dropped connection: got %v, want a retryable error", err)
	}

	// Nothing listening at all: retryable too.
	port := freePort(t)
	err = fakeChannel(t, port).Send(context.Background(), validMessage())
	if err == nil || errors.As(err, &perm) {
		t.Fatalf("refused connection: got %v, want a retryable error", err)
	}
}

func TestSMTPFakeServerAccepts(t *testing.T) {
	// The fake server's happy path, so the failures above are the replies'.
	f := &fakeSMTP{rcpt: "250 ok"}
	if err := fakeChannel(t, f.start(t)).Send(context.Background(), validMessage()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data != 1 {
		t.Errorf("fake server accepted %d messages, want 1", f.data)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key to dir and
// returns a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (*x509.CertPool, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, certFile, keyFile
}

func TestSMTPContextDeadlineBoundsASilentServer(t *testing.T) {
	// A server that accepts the connection and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	s := fakeChannel(t, l.Addr().(*net.TCPAddr).Port) // its own timeout is 5s
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Send(ctx, validMessage())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Send took %v, past the context's 300ms deadline", took)
	}
	var perm *PermanentError
	if err == nil || errors.As(err, &perm) {
		t.Fatalf("silent server: got %v, want a retryable error", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not say the deadline passed", err)
	}
}
