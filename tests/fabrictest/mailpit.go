package fabrictest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/modroot"
)

// Mailpit is a running mailpit server (a real SMTP server that keeps what it receives
// and shows it over an HTTP API), started by StartMailpit for one test.
type Mailpit struct {
	// SMTPHost and SMTPPort are its SMTP server's loopback address.
	SMTPHost string
	SMTPPort int
	// API is the base URL of its HTTP API ("http://127.0.0.1:PORT").
	API string

	client *http.Client
}

// MailpitBinary finds mailpit: <repo root>/.tools/bin/mailpit (`make mailpit` puts it
// there), then PATH.
func MailpitBinary() (string, bool) {
	if root, err := modroot.Find(); err == nil {
		p := filepath.Join(root, ".tools", "bin", "mailpit")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, true
		}
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p, true
	}
	return "", false
}

// StartMailpit starts mailpit on free loopback ports with a database in a temporary
// folder, waits until its SMTP port accepts connections and its API answers, and
// stops it when the test ends. extra are more command-line flags (e.g.
// "--ignore-duplicate-ids"; without it mailpit keeps every message it accepts, so a
// repeated Message-ID shows as a second message). Without a mailpit binary the test
// is skipped, or fails when CI is set or FABRIC_REQUIRE_MAILPIT=1 (run `make mailpit`).
func StartMailpit(t testing.TB, extra ...string) *Mailpit {
	t.Helper()
	bin, ok := MailpitBinary()
	if !ok {
		if os.Getenv("CI") != "" || os.Getenv("FABRIC_REQUIRE_MAILPIT") == "1" {
			t.Fatal("mailpit not found in .tools/bin or on PATH; run `make mailpit`")
		}
		t.Skip("mailpit not found in .tools/bin or on PATH; run `make mailpit` (CI or FABRIC_REQUIRE_MAILPIT=1 makes this a failure)")
	}
	var lastErr error
	for range 3 { // a port taken between freePorts and mailpit's bind: try others
		mp, err := tryStartMailpit(t, bin, extra)
		if err == nil {
			return mp
		}
		lastErr = err
	}
	t.Fatalf("mailpit did not start: %v", lastErr)
	return nil
}

func tryStartMailpit(t testing.TB, bin string, extra []string) (*Mailpit, error) {
	t.Helper()
	ports := freePorts(t, 2)
	smtpPort, httpPort := ports[0], ports[1]
	dir := t.TempDir()
	args := append([]string{
		"--smtp", "127.0.0.1:" + strconv.Itoa(smtpPort),
		"--listen", "127.0.0.1:" + strconv.Itoa(httpPort),
		"--database", filepath.Join(dir, "mp.db"),
		"--disable-version-check",
		"--smtp-disable-rdns",
		"--quiet",
	}, extra...)
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, "mailpit.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	var waitErr error // set before exited is closed
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	mp := &Mailpit{SMTPHost: "127.0.0.1", SMTPPort: smtpPort, API: "http://127.0.0.1:" + strconv.Itoa(httpPort),
		client: &http.Client{Timeout: 10 * time.Second}}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			out, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("mailpit exited (%w): %s", waitErr, out)
		default:
		}
		if mp.ready() {
			t.Cleanup(stop)
			return mp, nil
		}
		if time.Now().After(deadline) {
			stop()
			out, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("mailpit not ready after 20s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (mp *Mailpit) ready() bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(mp.SMTPHost, strconv.Itoa(mp.SMTPPort)), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	resp, err := mp.client.Get(mp.API + "/api/v1/messages")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// MailpitAddress is an address in a mailpit message.
type MailpitAddress struct {
	Name    string
	Address string
}

// MailpitSummary is one entry of GET /api/v1/messages.
type MailpitSummary struct {
	ID        string
	MessageID string
	Subject   string
	From      MailpitAddress
	To        []MailpitAddress
	Snippet   string
}

// MailpitMessage is GET /api/v1/message/{ID}.
type MailpitMessage struct {
	ID        string
	MessageID string
	Subject   string
	Text      string
	HTML      string
	From      MailpitAddress
	To        []MailpitAddress
	Cc        []MailpitAddress
	Bcc       []MailpitAddress
	ReplyTo   []MailpitAddress
}

func (mp *Mailpit) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := mp.client.Get(mp.API + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("mailpit GET %s: %v: %s", path, err, body)
	}
}

// Messages returns every message mailpit holds, newest first.
func (mp *Mailpit) Messages(t testing.TB) []MailpitSummary {
	t.Helper()
	var out []MailpitSummary
	for start := 0; ; {
		var page struct {
			Total    int
			Count    int
			Messages []MailpitSummary
		}
		mp.getJSON(t, "/api/v1/messages?limit=500&start="+strconv.Itoa(start), &page)
		out = append(out, page.Messages...)
		start += len(page.Messages)
		if len(page.Messages) == 0 || start >= page.Total {
			if start != page.Total && len(page.Messages) != 0 {
				t.Fatalf("mailpit reports %d messages but listed %d", page.Total, start)
			}
			return out
		}
	}
}

// Count is how many messages mailpit holds.
func (mp *Mailpit) Count(t testing.TB) int {
	t.Helper()
	var page struct{ Total int }
	mp.getJSON(t, "/api/v1/messages?limit=1", &page)
	return page.Total
}

// Message returns one message.
func (mp *Mailpit) Message(t testing.TB, id string) MailpitMessage {
	t.Helper()
	var m MailpitMessage
	mp.getJSON(t, "/api/v1/message/"+url.PathEscape(id), &m)
	return m
}

// Headers returns one message's headers.
func (mp *Mailpit) Headers(t testing.TB, id string) map[string][]string {
	t.Helper()
	var h map[string][]string
	mp.getJSON(t, "/api/v1/message/"+url.PathEscape(id)+"/headers", &h)
	return h
}

// Raw returns one message's source as received.
func (mp *Mailpit) Raw(t testing.TB, id string) string {
	t.Helper()
	resp, err := mp.client.Get(mp.API + "/api/v1/message/" + url.PathEscape(id) + "/raw")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit GET raw %s: %s", id, resp.Status)
	}
	return string(body)
}

// WaitFor polls until mailpit holds at least n messages and returns them; it fails
// the test if it holds fewer after within. It does not fail on more (the caller
// asserts the exact count, after a settle time of its choosing).
func (mp *Mailpit) WaitFor(t testing.TB, n int, within time.Duration) []MailpitSummary {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ms := mp.Messages(t)
		if len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit holds %d messages after %s, want %d", len(ms), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
