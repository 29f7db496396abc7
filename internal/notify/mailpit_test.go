package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/decision-fabric/fabric/internal/modroot"
)

// mailpit is a running mailpit server (a real SMTP server that keeps what it
// receives and shows it over an HTTP API), started by startMailpit for one test.
type mailpit struct {
	// SMTPPort is the loopback port of its SMTP server.
	SMTPPort int
	// API is the base URL of its HTTP API ("http://127.0.0.1:PORT").
	API string
}

// mailpitBinary finds mailpit: <repo root>/.tools/bin/mailpit (make mailpit puts it
// there), then PATH.
func mailpitBinary() (string, bool) {
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

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMailpit starts mailpit on free loopback ports with a database in a
// temporary folder, waits until its SMTP port accepts connections and its API
// answers, and stops it when the test ends. extra are more command-line flags.
// Without a mailpit binary the test is skipped, or fails when CI is set or
// FABRIC_REQUIRE_MAILPIT=1 (run `make mailpit`).
func startMailpit(t *testing.T, extra ...string) *mailpit {
	t.Helper()
	bin, ok := mailpitBinary()
	if !ok {
		if os.Getenv("CI") != "" || os.Getenv("FABRIC_REQUIRE_MAILPIT") == "1" {
			t.Fatal("mailpit not found in .tools/bin or on PATH; run `make mailpit`")
		}
		t.Skip("mailpit not found in .tools/bin or on PATH; run `make mailpit` (CI or FABRIC_REQUIRE_MAILPIT=1 makes this a failure)")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a port taken between freePort and mailpit's bind: try others
		mp, err := tryStartMailpit(t, bin, extra)
		if err == nil {
			return mp
		}
		lastErr = err
	}
	t.Fatalf("mailpit did not start: %v", lastErr)
	return nil
}

func tryStartMailpit(t *testing.T, bin string, extra []string) (*mailpit, error) {
	t.Helper()
	smtpPort, httpPort := freePort(t), freePort(t)
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
	mp := &mailpit{SMTPPort: smtpPort, API: "http://127.0.0.1:" + strconv.Itoa(httpPort)}
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

func (mp *mailpit) ready() bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(mp.SMTPPort), time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	resp, err := http.Get(mp.API + "/api/v1/messages")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// mailpitSummary is one entry of GET /api/v1/messages.
type mailpitSummary struct {
	ID        string
	MessageID string
	Subject   string
	To        []struct{ Address string }
}

// mailpitMessage is GET /api/v1/message/{ID}.
type mailpitMessage struct {
	ID        string
	MessageID string
	Subject   string
	Text      string
	HTML      string
	From      struct{ Address string }
	To        []struct{ Address string }
	Bcc       []struct{ Address string }
}

func (mp *mailpit) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(mp.API + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// Messages returns what mailpit holds, newest first.
func (mp *mailpit) Messages(t *testing.T) []mailpitSummary {
	t.Helper()
	var list struct {
		Total    int
		Messages []mailpitSummary
	}
	mp.getJSON(t, "/api/v1/messages?limit=1000", &list)
	if list.Total != len(list.Messages) {
		t.Fatalf("mailpit reports %d messages but listed %d", list.Total, len(list.Messages))
	}
	return list.Messages
}

// Message returns one message.
func (mp *mailpit) Message(t *testing.T, id string) mailpitMessage {
	t.Helper()
	var m mailpitMessage
	mp.getJSON(t, "/api/v1/message/"+id, &m)
	return m
}

// Headers returns one message's headers.
func (mp *mailpit) Headers(t *testing.T, id string) map[string][]string {
	t.Helper()
	var h map[string][]string
	mp.getJSON(t, "/api/v1/message/"+id+"/headers", &h)
	return h
}

// WaitFor polls until mailpit holds n messages and returns them; it fails the
// test if it holds more, or fewer after 10s.
func (mp *mailpit) WaitFor(t *testing.T, n int) []mailpitSummary {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms := mp.Messages(t)
		if len(ms) > n {
			t.Fatalf("mailpit holds %d messages, want %d", len(ms), n)
		}
		if len(ms) == n {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit holds %d messages after 10s, want %d", len(ms), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
