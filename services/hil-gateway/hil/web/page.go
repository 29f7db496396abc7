package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/app.css
var staticFS embed.FS

// SessionCookie holds the signed-in approver's bearer token.
const SessionCookie = "df_session"

// csrfField is the hidden form field carrying the CSRF token.
const csrfField = "csrf"

// maxForm caps a POST body: a reason, a code and a token fit many times over.
const maxForm = 64 << 10

// contentSecurityPolicy allows the page's own stylesheet and nothing else: no script,
// no frames, forms only to the page itself.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configure the page.
type Options struct {
	// BasePath is where the page lives ("/ui" when empty), without a trailing slash.
	BasePath string
	// CSRFKey keys the HMAC of the forms' CSRF tokens (32 bytes); random when nil,
	// which is fine for one process (tokens of a restarted process fail, the form
	// is shown again).
	CSRFKey []byte
	// Secure sets the session cookie's Secure flag. Set it unless the page is served
	// over plain http on loopback (development); a request that came over TLS gets
	// a Secure cookie either way.
	Secure bool
	// Now is the clock (time.Now when nil), for the deadlines' "in 2h" text.
	Now func() time.Time

	// Sign-in is by bearer token only. OIDC sign-in is out of scope for this page:
	// should an OIDC option ever be added here, it is not implemented by this
	// package and must not silently fall back to anything.
}

// Page is the approval page.
type Page struct {
	b      Backend
	base   string
	key    []byte
	secure bool
	now    func() time.Time
	cop    *http.CrossOriginProtection
	tmpl   map[string]*template.Template
}

// New returns the approval page over b.
func New(b Backend, opts Options) *Page {
	base := strings.TrimRight(opts.BasePath, "/")
	if base == "" {
		base = "/ui"
	}
	if !strings.HasPrefix(base, "/") {
		base = "/" + base
	}
	key := opts.CSRFKey
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			panic(fmt.Sprintf("web: random CSRF key: %v", err))
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	p := &Page{b: b, base: base, key: key, secure: opts.Secure, now: now, cop: http.NewCrossOriginProtection()}
	p.tmpl = p.parseTemplates()
	return p
}

func (p *Page) parseTemplates() map[string]*template.Template {
	funcs := template.FuncMap{
		"visible":  visible,
		"plain":    plain,
		"path":     url.PathEscape,
		"deadline": p.deadline,
		"pct":      func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
		"num":      func(f float64) string { return fmt.Sprintf("%.2f", f) },
		"join":     strings.Join,
	}
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		short := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if short == "layout" {
			continue
		}
		out[short] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
	return out
}

// Register adds the page's routes to mux.
func (p *Page) Register(mux *http.ServeMux) {
	b := p.base
	mux.Handle("GET "+b+"/{$}", p.headers(http.HandlerFunc(p.index)))
	mux.Handle("GET "+b, p.headers(http.RedirectHandler(b+"/", http.StatusSeeOther)))
	mux.Handle("POST "+b+"/login", p.headers(p.post(http.HandlerFunc(p.login))))
	mux.Handle("POST "+b+"/logout", p.headers(p.post(http.HandlerFunc(p.logout))))
	mux.Handle("GET "+b+"/pending", p.headers(p.session(p.pending)))
	mux.Handle("GET "+b+"/p/{id}", p.headers(p.session(p.detail)))
	mux.Handle("POST "+b+"/p/{id}/decide", p.headers(p.post(p.session(p.decide))))
	mux.Handle("GET "+b+"/static/app.css", p.headers(http.HandlerFunc(serveCSS)))
	// Anything else under the base path: a 404 page, with the headers too.
	mux.Handle(b+"/", p.headers(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.renderError(w, nil, http.StatusNotFound, "There is no such page.")
	})))
}

// headers sets the security headers on every response.
func (p *Page) headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Frame-Options", "DENY")
		h.ServeHTTP(w, r)
	})
}

// post refuses cross-origin browser POSTs (Sec-Fetch-Site, else Origin against
// Host) before the handler runs, and caps the body.
func (p *Page) post(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.cop.Check(r); err != nil {
			p.renderError(w, nil, http.StatusForbidden, "This form was sent from another site and was refused.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		h.ServeHTTP(w, r)
	})
}

type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// session is the signed-in approver of one request.
type session struct {
	token string
	p     *auth.Principal
}

// session authenticates the session cookie: without a valid one a GET goes to the
// sign-in form and a POST is refused with 401.
func (p *Page) session(h sessionHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := p.current(r)
		if s == nil {
			p.clearCookie(w, r)
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, p.base+"/", http.StatusSeeOther)
				return
			}
			p.renderError(w, nil, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		h(w, r.WithContext(auth.WithPrincipal(r.Context(), s.p)), s)
	})
}

// current returns the request's session, or nil.
func (p *Page) current(r *http.Request) *session {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	pr, err := p.b.Authenticate(r.Context(), c.Value)
	if err != nil || pr == nil {
		return nil
	}
	return &session{token: c.Value, p: pr}
}

func (p *Page) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    value,
		Path:     p.base,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   p.secure || r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

func (p *Page) clearCookie(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(SessionCookie); err == nil {
		p.setCookie(w, r, "", -1)
	}
}

// csrf is the CSRF token of a form: base64url(HMAC-SHA256(key, session token | id)).
// The logout form uses the empty id (no proposal has one).
func (p *Page) csrf(sessionToken, id string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(sessionToken + "|" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Page) csrfOK(r *http.Request, sessionToken, id string) bool {
	got := r.PostFormValue(csrfField)
	return got != "" && hmac.Equal([]byte(got), []byte(p.csrf(sessionToken, id)))
}

// view is what every template gets.
type view struct {
	Title      string
	Base       string
	Subject    string
	Tenant     string
	LogoutCSRF string
	// Status is a success message (role=status), Error a failure (role=alert).
	Status string
	Error  string

	Items []Item
	Item  *Item
	CSRF  string
	// Form keeps what the approver entered when the vote is shown again.
	Form formValues
}

type formValues struct {
	Decision string
	Reason   string
}

func (p *Page) newView(title string, s *session) *view {
	v := &view{Title: title, Base: p.base}
	if s != nil {
		v.Subject = s.p.Subject
		v.Tenant = s.p.TenantID
		v.LogoutCSRF = p.csrf(s.token, "")
	}
	return v
}

func (p *Page) render(w http.ResponseWriter, code int, name string, v *view) {
	var buf strings.Builder
	if err := p.tmpl[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(buf.String()))
}

// renderError shows msg on an error page; s (nil when unknown or refused) shows who
// is signed in.
func (p *Page) renderError(w http.ResponseWriter, s *session, code int, msg string) {
	if code == http.StatusUnauthorized {
		s = nil
	}
	v := p.newView(http.StatusText(code), s)
	v.Error = msg
	p.render(w, code, "error", v)
}

// httpError maps a Backend error to an HTTP status and the message to show.
func httpError(err error) (int, string) {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return http.StatusInternalServerError, "Something went wrong. Try again later."
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return http.StatusUnauthorized, st.Message()
	case codes.PermissionDenied:
		return http.StatusForbidden, st.Message()
	case codes.NotFound:
		return http.StatusNotFound, st.Message()
	case codes.FailedPrecondition:
		return http.StatusConflict, st.Message()
	case codes.InvalidArgument:
		return http.StatusBadRequest, st.Message()
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests, st.Message()
	default:
		return http.StatusInternalServerError, "Something went wrong. Try again later."
	}
}

func (p *Page) index(w http.ResponseWriter, r *http.Request) {
	if s := p.current(r); s != nil {
		http.Redirect(w, r, p.base+"/pending", http.StatusSeeOther)
		return
	}
	p.clearCookie(w, r)
	p.render(w, http.StatusOK, "signin", p.newView("Sign in", nil))
}

func (p *Page) login(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	token = strings.TrimPrefix(token, "Bearer ")
	fail := func(code int, msg string) {
		v := p.newView("Sign in", nil)
		v.Error = msg
		p.render(w, code, "signin", v)
	}
	if token == "" {
		fail(http.StatusUnauthorized, "Enter a token.")
		return
	}
	pr, err := p.b.Authenticate(r.Context(), token)
	switch code, msg := httpError(err); {
	case err == nil && pr == nil:
		fail(http.StatusUnauthorized, "The token was not accepted.")
		return
	case err != nil && code == http.StatusInternalServerError:
		fail(code, msg)
		return
	case err != nil:
		fail(http.StatusUnauthorized, "The token was not accepted: "+msg)
		return
	}
	p.setCookie(w, r, token, 0)
	http.Redirect(w, r, p.base+"/pending", http.StatusSeeOther)
}

func (p *Page) logout(w http.ResponseWriter, r *http.Request) {
	if s := p.current(r); s != nil && !p.csrfOK(r, s.token, "") {
		p.renderError(w, s, http.StatusForbidden, "The form has expired. Reload the page and try again.")
		return
	}
	p.setCookie(w, r, "", -1)
	http.Redirect(w, r, p.base+"/", http.StatusSeeOther)
}

func (p *Page) pending(w http.ResponseWriter, r *http.Request, s *session) {
	items, err := p.b.Pending(r.Context())
	if err != nil {
		code, msg := httpError(err)
		p.failSession(w, r, s, code, msg)
		return
	}
	v := p.newView("Pending approvals", s)
	v.Items = items
	p.render(w, http.StatusOK, "pending", v)
}

// failSession shows an error page; a 401 from the Backend ends the session when the
// session's token no longer authenticates (sessionEnded).
func (p *Page) failSession(w http.ResponseWriter, r *http.Request, s *session, code int, msg string) {
	if p.sessionEnded(r, code) {
		p.clearCookie(w, r)
	}
	p.renderError(w, s, code, msg)
}

// sessionEnded reports whether a Backend error with HTTP status code ends the
// session: a 401 whose session token no longer authenticates (it expired, or was
// revoked). The hil-gateway also answers a wrong, expired or replayed TOTP code with
// UNAUTHENTICATED (401): the approver stays signed in and may try the next code.
func (p *Page) sessionEnded(r *http.Request, code int) bool {
	return code == http.StatusUnauthorized && p.current(r) == nil
}

func (p *Page) detail(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	it, err := p.b.Item(r.Context(), id)
	if err != nil {
		code, msg := httpError(err)
		p.failSession(w, r, s, code, msg)
		return
	}
	v := p.detailView(s, it)
	if done := r.URL.Query().Get("done"); done != "" {
		v.Status = "Your vote is recorded. The proposal is now " + done + "."
	}
	p.render(w, http.StatusOK, "detail", v)
}

func (p *Page) detailView(s *session, it *Item) *view {
	v := p.newView("Proposal "+it.ProposalID, s)
	v.Item = it
	v.CSRF = p.csrf(s.token, it.ProposalID)
	v.Form.Decision = "approve"
	return v
}

var errBadForm = errors.New("bad form")

func (p *Page) decide(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if err := r.ParseForm(); err != nil {
		p.renderError(w, s, http.StatusBadRequest, "The form could not be read.")
		return
	}
	if !p.csrfOK(r, s.token, id) {
		p.renderError(w, s, http.StatusForbidden, "The form has expired or did not come from this page. Reload the page and try again.")
		return
	}
	form := formValues{Decision: r.PostFormValue("decision"), Reason: r.PostFormValue("reason")}
	totp := strings.ReplaceAll(strings.TrimSpace(r.PostFormValue("totp")), " ", "")
	var d Decision
	err := func() error {
		switch form.Decision {
		case "approve":
			d.Approve = true
		case "deny":
		default:
			return fmt.Errorf("%w: choose approve or deny", errBadForm)
		}
		if len(totp) != 6 || strings.Trim(totp, "0123456789") != "" {
			return fmt.Errorf("%w: enter the 6-digit code from your authenticator app", errBadForm)
		}
		return nil
	}()
	var code int
	var msg string
	if err != nil {
		code, msg = http.StatusBadRequest, strings.TrimPrefix(err.Error(), errBadForm.Error()+": ")
	} else {
		d.Reason = strings.TrimSpace(form.Reason)
		d.TOTP = totp
		st, derr := p.b.Decide(r.Context(), id, d)
		if derr == nil {
			http.Redirect(w, r, p.base+"/p/"+url.PathEscape(id)+"?done="+url.QueryEscape(st), http.StatusSeeOther)
			return
		}
		code, msg = httpError(derr)
	}
	// Show the proposal again with the error; when it cannot be shown, the error alone.
	it, ierr := p.b.Item(r.Context(), id)
	if ierr != nil {
		p.failSession(w, r, s, code, msg)
		return
	}
	v := p.detailView(s, it)
	v.Error = msg
	v.Form = form
	if p.sessionEnded(r, code) {
		p.clearCookie(w, r)
	}
	p.render(w, code, "detail", v)
}

// deadline renders a deadline in UTC with the time left.
func (p *Page) deadline(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	abs := t.UTC().Format("2006-01-02 15:04 UTC")
	left := t.Sub(p.now())
	if left <= 0 {
		return abs + " (passed)"
	}
	return abs + " (in " + humanDuration(left) + ")"
}

func serveCSS(w http.ResponseWriter, _ *http.Request) {
	b, err := staticFS.ReadFile("static/app.css")
	if err != nil {
		http.Error(w, "missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	_, _ = w.Write(b)
}
