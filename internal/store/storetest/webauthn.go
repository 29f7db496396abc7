package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/store"
)

// webAuthnTests are the WebAuthnStore conformance subtests; Run runs them.
var webAuthnTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"WebAuthnCredentialPutList", testWebAuthnCredentialPutList},
	{"WebAuthnCredentialIsolation", testWebAuthnCredentialIsolation},
	{"WebAuthnSignCount", testWebAuthnSignCount},
	{"WebAuthnSignCountConcurrent", testWebAuthnSignCountConcurrent},
	{"WebAuthnSessionTake", testWebAuthnSessionTake},
	{"WebAuthnSessionTakeConcurrent", testWebAuthnSessionTakeConcurrent},
	{"WebAuthnSessionInvalid", testWebAuthnSessionInvalid},
}

var webAuthnT0 = time.Date(2026, 1, 2, 3, 4, 5, 6007, time.UTC)

func newWebAuthnCredential(tenant, subject, id string) *store.WebAuthnCredential {
	return &store.WebAuthnCredential{TenantID: tenant, Subject: subject, ID: []byte(id), PublicKey: []byte("cose:" + id),
		SignCount: 3, AAGUID: make([]byte, 16), Flags: 0x45, AttestationFormat: "none", CreatedAt: webAuthnT0}
}

func putWebAuthnCredential(t *testing.T, s store.Store, tenant, subject, id string) *store.WebAuthnCredential {
	t.Helper()
	c, err := s.WebAuthn().PutWebAuthnCredential(ctx(t), newWebAuthnCredential(tenant, subject, id))
	require.NoError(t, err)
	return c
}

func testWebAuthnCredentialPutList(t *testing.T, s store.Store) {
	w := s.WebAuthn()
	list, err := w.ListWebAuthnCredentials(ctx(t), "t", "alice")
	require.NoError(t, err)
	require.Empty(t, list)

	in := newWebAuthnCredential("t", "alice", "cred-1")
	in.LastUsedAt = webAuthnT0.Add(time.Hour)
	orig := *in
	got, err := w.PutWebAuthnCredential(ctx(t), in)
	require.NoError(t, err)
	require.Equal(t, orig, *in, "PutWebAuthnCredential must not modify its input")
	want := newWebAuthnCredential("t", "alice", "cred-1")
	want.CreatedAt = webAuthnT0.Truncate(time.Microsecond)
	require.Equal(t, want, got, "LastUsedAt starts empty")

	second := newWebAuthnCredential("t", "alice", "cred-2")
	second.CreatedAt, second.AAGUID, second.SignCount = webAuthnT0.Add(time.Second), nil, 0
	_, err = w.PutWebAuthnCredential(ctx(t), second)
	require.NoError(t, err)
	list, err = w.ListWebAuthnCredentials(ctx(t), "t", "alice")
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, want, list[0])
	require.Equal(t, []byte("cred-2"), list[1].ID)
	require.Equal(t, []byte{}, list[1].AAGUID)

	_, err = w.PutWebAuthnCredential(ctx(t), newWebAuthnCredential("t", "bob", "cred-1"))
	require.ErrorIs(t, err, store.ErrConflict, "a credential ID is registered once per tenant")

	for _, bad := range []*store.WebAuthnCredential{
		nil,
		{Subject: "a", ID: []byte("x"), PublicKey: []byte("k")},
		{TenantID: "t", ID: []byte("x"), PublicKey: []byte("k")},
		{TenantID: "t", Subject: "a", PublicKey: []byte("k")},
		{TenantID: "t", Subject: "a", ID: []byte("x")},
	} {
		_, err := w.PutWebAuthnCredential(ctx(t), bad)
		require.ErrorIs(t, err, store.ErrInvalid)
	}
}

func testWebAuthnCredentialIsolation(t *testing.T, s store.Store) {
	w := s.WebAuthn()
	putWebAuthnCredential(t, s, "t1", "alice", "cred")
	// The same credential ID in another tenant is another credential.
	putWebAuthnCredential(t, s, "t2", "carol", "cred")
	for _, k := range [][2]string{{"t2", "alice"}, {"t1", "bob"}} {
		list, err := w.ListWebAuthnCredentials(ctx(t), k[0], k[1])
		require.NoError(t, err)
		require.Empty(t, list)
		_, err = w.AdvanceWebAuthnSignCount(ctx(t), k[0], k[1], []byte("cred"), 99, 0x05, webAuthnT0)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	list, err := w.ListWebAuthnCredentials(ctx(t), "t1", "alice")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, uint32(3), list[0].SignCount)
}

func testWebAuthnSignCount(t *testing.T, s store.Store) {
	w := s.WebAuthn()
	putWebAuthnCredential(t, s, "t", "alice", "cred")
	at := webAuthnT0.Add(time.Minute)
	c, err := w.AdvanceWebAuthnSignCount(ctx(t), "t", "alice", []byte("cred"), 4, 0x05, at)
	require.NoError(t, err)
	require.Equal(t, uint32(4), c.SignCount)
	require.Equal(t, uint8(0x05), c.Flags)
	require.Equal(t, at.Truncate(time.Microsecond), c.LastUsedAt)

	for _, n := range []uint32{4, 3, 0} {
		_, err = w.AdvanceWebAuthnSignCount(ctx(t), "t", "alice", []byte("cred"), n, 0x05, at)
		require.ErrorIs(t, err, store.ErrConflict, "counter %d after 4 (a clone)", n)
	}
	c, err = w.AdvanceWebAuthnSignCount(ctx(t), "t", "alice", []byte("cred"), 1<<32-1, 0x05, at)
	require.NoError(t, err)
	require.Equal(t, uint32(1<<32-1), c.SignCount, "the whole uint32 range")

	// An authenticator without a counter reports 0 every time.
	zero := newWebAuthnCredential("t", "alice", "zero")
	zero.SignCount = 0
	_, err = w.PutWebAuthnCredential(ctx(t), zero)
	require.NoError(t, err)
	for range 2 {
		c, err = w.AdvanceWebAuthnSignCount(ctx(t), "t", "alice", []byte("zero"), 0, 0x05, at)
		require.NoError(t, err)
		require.Zero(t, c.SignCount)
	}
	_, err = w.AdvanceWebAuthnSignCount(ctx(t), "t", "alice", []byte("zero"), 1, 0x05, at)
	require.NoError(t, err)
	_, err = w.AdvanceWebAuthnSignCount(ctx(t), "t", "alice", []byte("zero"), 0, 0x05, at)
	require.ErrorIs(t, err, store.ErrConflict, "0 after a counter started")
}

func testWebAuthnSignCountConcurrent(t *testing.T, s store.Store) {
	putWebAuthnCredential(t, s, "t", "alice", "cred")
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.WebAuthn().AdvanceWebAuthnSignCount(ctx(t), "t", "alice", []byte("cred"), 10, 0x05, webAuthnT0)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, store.ErrConflict)
	}
	require.Equal(t, 1, wins, "one counter value, one assertion")
}

func newWebAuthnSession(tenant, subject, challenge string) *store.WebAuthnSession {
	return &store.WebAuthnSession{TenantID: tenant, Challenge: challenge, Subject: subject, Kind: store.WebAuthnApproval,
		ManifestSHA256: "ab12", Data: []byte(`{"challenge":"` + challenge + `"}`), CreatedAt: webAuthnT0,
		ExpiresAt: webAuthnT0.Add(2 * time.Minute)}
}

func testWebAuthnSessionTake(t *testing.T, s store.Store) {
	w := s.WebAuthn()
	in := newWebAuthnSession("t", "alice", "c1")
	orig := *in
	require.NoError(t, w.PutWebAuthnSession(ctx(t), in))
	require.Equal(t, orig, *in)
	require.ErrorIs(t, w.PutWebAuthnSession(ctx(t), newWebAuthnSession("t", "bob", "c1")), store.ErrConflict,
		"a challenge is stored once per tenant")
	reg := newWebAuthnSession("t", "alice", "c2")
	reg.Kind, reg.ManifestSHA256 = store.WebAuthnRegistration, ""
	require.NoError(t, w.PutWebAuthnSession(ctx(t), reg))

	for _, k := range [][3]string{{"t2", "alice", "c1"}, {"t", "bob", "c1"}, {"t", "alice", "c3"}} {
		_, err := w.TakeWebAuthnSession(ctx(t), k[0], k[1], k[2])
		require.ErrorIs(t, err, store.ErrNotFound, "%v", k)
	}
	got, err := w.TakeWebAuthnSession(ctx(t), "t", "alice", "c1")
	require.NoError(t, err)
	want := newWebAuthnSession("t", "alice", "c1")
	want.CreatedAt = webAuthnT0.Truncate(time.Microsecond)
	want.ExpiresAt = want.ExpiresAt.Truncate(time.Microsecond)
	require.Equal(t, want, got)
	_, err = w.TakeWebAuthnSession(ctx(t), "t", "alice", "c1")
	require.ErrorIs(t, err, store.ErrNotFound, "a session is taken once")

	// An expired session is still returned by Take (the caller refuses it), but a
	// later Put for the subject purges it.
	late := newWebAuthnSession("t", "alice", "c4")
	late.CreatedAt = webAuthnT0.Add(time.Hour)
	late.ExpiresAt = late.CreatedAt.Add(time.Minute)
	require.NoError(t, w.PutWebAuthnSession(ctx(t), late))
	_, err = w.TakeWebAuthnSession(ctx(t), "t", "alice", "c2")
	require.ErrorIs(t, err, store.ErrNotFound, "expired sessions are purged by the next Put")
	got, err = w.TakeWebAuthnSession(ctx(t), "t", "alice", "c4")
	require.NoError(t, err)
	require.Equal(t, store.WebAuthnApproval, got.Kind)
}

func testWebAuthnSessionTakeConcurrent(t *testing.T, s store.Store) {
	require.NoError(t, s.WebAuthn().PutWebAuthnSession(ctx(t), newWebAuthnSession("t", "alice", "c")))
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.WebAuthn().TakeWebAuthnSession(ctx(t), "t", "alice", "c")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		if err == nil {
			wins++
			continue
		}
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	require.Equal(t, 1, wins, "a session is used once")
}

func testWebAuthnSessionInvalid(t *testing.T, s store.Store) {
	w := s.WebAuthn()
	mutate := func(f func(*store.WebAuthnSession)) *store.WebAuthnSession {
		x := newWebAuthnSession("t", "alice", "c")
		f(x)
		return x
	}
	for _, bad := range []*store.WebAuthnSession{
		nil,
		mutate(func(x *store.WebAuthnSession) { x.TenantID = "" }),
		mutate(func(x *store.WebAuthnSession) { x.Challenge = "" }),
		mutate(func(x *store.WebAuthnSession) { x.Subject = "" }),
		mutate(func(x *store.WebAuthnSession) { x.Data = nil }),
		mutate(func(x *store.WebAuthnSession) { x.ExpiresAt = time.Time{} }),
		mutate(func(x *store.WebAuthnSession) { x.Kind = "login" }),
		mutate(func(x *store.WebAuthnSession) { x.ManifestSHA256 = "" }),
		mutate(func(x *store.WebAuthnSession) { x.Kind = store.WebAuthnRegistration }),
	} {
		require.ErrorIs(t, w.PutWebAuthnSession(ctx(t), bad), store.ErrInvalid)
	}
}
