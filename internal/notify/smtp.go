package notify

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/decision-fabric/fabric/internal/redact"
)

// TLS modes of SMTPConfig.TLS.
const (
	SMTPTLSNone     = "none"     // plain text; only to a loopback host (a local relay)
	SMTPTLSStartTLS = "starttls" // STARTTLS is required (the default)
	SMTPTLSImplicit = "tls"      // implicit TLS from the first byte (SMTPS)
)

// HeaderEvent is the e-mail header that carries Message.EventID.
const HeaderEvent = "X-Decision-Fabric-Event"

// defaultSMTPTimeout bounds one Send when SMTPConfig.Timeout is zero.
const defaultSMTPTimeout = 30 * time.Second

// SMTPConfig configures the e-mail channel. Addresses are configuration, not
// personal data of a proposal; they are still never put in an error message.
type SMTPConfig struct {
	// Host is the SMTP server's name or IP address.
	Host string
	// Port is the SMTP server's port; 0 means 587 for "starttls", 465 for "tls"
	// and 25 for "none".
	Port int
	// From is the sender address ("Decision Fabric <hil@example.com>" or a bare
	// address).
	From string
	// To are the recipients; each message goes to all of them at once.
	To []string
	// Username and Password authenticate with SMTP AUTH PLAIN when Username is
	// set. The password is never logged and never part of an error.
	Username string
	Password string
	// TLS is "none", "starttls" or "tls"; "" means "starttls". "none" is only
	// accepted for a loopback host.
	TLS string
	// Timeout bounds connecting and each exchange with the server; 0 means 30s.
	Timeout time.Duration
}

// SMTP is the e-mail Channel: one message per Send, to every configured
// recipient, with a Message-ID derived from the event so a retried event carries
// the same id.
type SMTP struct {
	cfg  SMTPConfig
	from string
	to   []string
	// tlsConfig, when set, replaces the default TLS configuration (tests use it
	// to trust their own certificate authority).
	tlsConfig *tls.Config
}

// NewSMTP checks cfg and returns the channel. It does not connect.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	host := strings.TrimSpace(cfg.Host)
	if host == "" || host != cfg.Host || strings.ContainsAny(host, "/@ \t\r\n") {
		return nil, errors.New("notify: smtp: Host is missing or malformed")
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = SMTPTLSStartTLS
	case SMTPTLSNone:
		if !isLoopbackHost(host) {
			return nil, errors.New(`notify: smtp: TLS "none" is only allowed for a loopback host`)
		}
	case SMTPTLSStartTLS, SMTPTLSImplicit:
	default:
		return nil, errors.New(`notify: smtp: TLS must be "none", "starttls" or "tls"`)
	}
	if cfg.Port == 0 {
		switch cfg.TLS {
		case SMTPTLSStartTLS:
			cfg.Port = 587
		case SMTPTLSImplicit:
			cfg.Port = 465
		default:
			cfg.Port = 25
		}
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, errors.New("notify: smtp: Port is out of range")
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("notify: smtp: Timeout is negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultSMTPTimeout
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("notify: smtp: Username and Password must be set together")
	}
	s := &SMTP{cfg: cfg}
	from, err := netmail.ParseAddress(cfg.From)
	if err != nil {
		return nil, errors.New("notify: smtp: From is not an e-mail address")
	}
	s.from = from.String()
	if len(cfg.To) == 0 {
		return nil, errors.New("notify: smtp: To is empty")
	}
	for i, a := range cfg.To {
		to, err := netmail.ParseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("notify: smtp: To[%d] is not an e-mail address", i)
		}
		s.to = append(s.to, to.String())
	}
	// Build a client once so that an option go-mail refuses is a configuration
	// error, not a failure of every Send.
	if _, err := s.client(cfg.Timeout); err != nil {
		return nil, errors.New("notify: smtp: " + s.sanitize(err))
	}
	return s, nil
}

// isLoopbackHost reports "localhost" and loopback IP addresses.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Name implements Channel.
func (s *SMTP) Name() string { return "smtp" }

// MessageID returns the Message-ID (without angle brackets) of the e-mail for an
// event: the first 32 hex digits of SHA-256(eventID) at "decision-fabric". It is
// the same for every retry of the event.
func MessageID(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return hex.EncodeToString(sum[:])[:32] + "@decision-fabric"
}

// Send implements Channel: it renders m and sends one e-mail to every recipient.
// A message Render refuses, and a 5xx reply from the server, are a
// *PermanentError; anything else (a 4xx reply, a refused or dropped connection, a
// timeout) may succeed on retry. Error messages never carry the password and are
// passed through redact.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	r, err := Render(m)
	if err != nil {
		return &PermanentError{Err: err}
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(s.from); err != nil {
		return &PermanentError{Err: errors.New("notify: smtp: From refused")}
	}
	if err := msg.To(s.to...); err != nil {
		return &PermanentError{Err: errors.New("notify: smtp: To refused")}
	}
	msg.Subject(r.Subject)
	msg.SetMessageIDWithValue(MessageID(m.EventID))
	// escape leaves no CR, LF or other control character: no header injection.
	msg.SetGenHeader(mail.Header(HeaderEvent), escape(m.EventID))
	msg.SetDateWithValue(time.Now())
	msg.SetBodyString(mail.TypeTextPlain, r.Text)

	timeout := s.cfg.Timeout
	capped := false // the context's deadline is the connection's
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout, capped = left, true
		}
	}
	if timeout <= 0 {
		return fmt.Errorf("notify: smtp: %w", context.DeadlineExceeded)
	}
	c, err := s.client(timeout)
	if err != nil {
		return errors.New("notify: smtp: " + s.sanitize(err))
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return s.classify(ctx, capped, err)
	}
	return nil
}

// client builds the go-mail client for one Send.
func (s *SMTP) client(timeout time.Duration) (*mail.Client, error) {
	opts := []mail.Option{
		mail.WithPort(s.cfg.Port),
		mail.WithTimeout(timeout),
	}
	switch s.cfg.TLS {
	case SMTPTLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case SMTPTLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case SMTPTLSImplicit:
		opts = append(opts, mail.WithSSL(), mail.WithTLSPolicy(mail.TLSMandatory))
	}
	tc := &tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}
	if s.tlsConfig != nil {
		tc = s.tlsConfig.Clone()
	}
	opts = append(opts, mail.WithTLSConfig(tc))
	if s.cfg.Username != "" {
		opts = append(opts,
			mail.WithSMTPAuth(mail.SMTPAuthPlain),
			mail.WithUsername(s.cfg.Username),
			mail.WithPassword(s.cfg.Password))
	}
	return mail.NewClient(s.cfg.Host, opts...)
}

// classify turns go-mail's error into the channel's: a 5xx reply is permanent,
// everything else is retryable. capped says the connection's timeout was the
// context's deadline: a network timeout then is that deadline passing (the
// connection's deadline can fire a moment before the context notices).
func (s *SMTP) classify(ctx context.Context, capped bool, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("notify: smtp: %s: %w", s.sanitize(err), ctxErr)
	}
	var ne net.Error
	if capped && errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("notify: smtp: %s: %w", s.sanitize(err), context.DeadlineExceeded)
	}
	code := 0
	var se *mail.SendError
	if errors.As(err, &se) {
		code = se.ErrorCode()
	}
	var te *textproto.Error
	if code == 0 && errors.As(err, &te) {
		code = te.Code
	}
	e := &smtpError{code: code, msg: "notify: smtp: " + s.sanitize(err)}
	if code >= 500 && code <= 599 {
		return &PermanentError{Err: e}
	}
	return e
}

// sanitize returns err's text without the password and with any personal data
// (a recipient address the server echoed) redacted.
func (s *SMTP) sanitize(err error) string {
	msg := err.Error()
	if s.cfg.Password != "" {
		msg = strings.ReplaceAll(msg, s.cfg.Password, redact.Placeholder)
	}
	return redact.String(msg)
}

// smtpError is a failed send, with the server's reply code when there was one.
type smtpError struct {
	code int
	msg  string
}

func (e *smtpError) Error() string { return e.msg }

// Code returns the SMTP reply code of the failure, or 0 when the server did not
// answer with one (a refused or dropped connection, a timeout).
func (e *smtpError) Code() int { return e.code }

var _ Channel = (*SMTP)(nil)
