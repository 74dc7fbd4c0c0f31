package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/seal"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// mailServer is a registry server with its mailbox on the file stores in
// dir, on loopback with real TLS.
type mailServer struct {
	srv  *registry.Server
	mail *app.RegistryMailbox
	url  registry.RegistryURL
	stop func()
}

func startMailServer(t testing.TB, dir, listen string, opts app.MailboxOptions, http registry.MailboxConfig) *mailServer {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cfg := fastConfig(dir, listen)
	accounts, closeAccounts, err := registry.NewFileAccountStore(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	mails, closeMails, err := registry.NewFileMailboxStore(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	prekeys, closePrekeys, err := registry.NewFilePrekeyStore(cfg.Data)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.NewRegistry(accounts, registry.NewPresenceStore(), memory.NewRealClock(), app.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := app.NewRegistryMailbox(svc, mails, prekeys, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, cleanup, err := registry.NewServer(cfg, svc, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.NewMailboxRoutes(srv, mb, http); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stopped := false
	ms := &mailServer{srv: srv, mail: mb, url: srv.URL()}
	ms.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		cleanup()
		closePrekeys()
		closeMails()
		closeAccounts()
	}
	t.Cleanup(ms.stop)
	return ms
}

// mailUser is a registered client with a published mailbox key.
type mailUser struct {
	me     domain.LocalIdentity
	c      *registry.Client
	prekey ports.SignedPrekey
	ring   map[uint32][]byte
}

func newMailUser(t testing.TB, ctx context.Context, url registry.RegistryURL, name string) *mailUser {
	t.Helper()
	u := &mailUser{me: newLocal(t, name), c: newClient(t, url, t.TempDir()), ring: map[uint32][]byte{}}
	if err := u.c.Register(ctx, u.me, domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	s := seal.New()
	pub, priv, err := s.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	k := ports.SignedPrekey{Name: u.me.Name(), KeyID: 1, Public: pub, Suite: s.Suite(), Created: now, Expires: now.Add(24 * time.Hour)}
	k.Signature = u.me.Sign(domain.PrekeySigningBytes(k.Name, u.me.PublicKey(), k.KeyID, k.Suite, k.Public, k.Created, k.Expires))
	if err := u.c.PublishPrekey(ctx, k); err != nil {
		t.Fatal(err)
	}
	u.prekey, u.ring[1] = k, priv
	return u
}

func (u *mailUser) sealTo(t testing.TB, to *mailUser, body string) []byte {
	t.Helper()
	l := ports.Letter{From: u.me.Identity, To: to.me.Identity, Expires: time.Now().Add(time.Hour).Truncate(time.Second),
		Envelope: ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: time.Now().UTC(), Body: body}}
	blob, err := seal.New().Seal(u.me, to.prekey, l)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

// TestMailboxOverHTTPS: the routes end to end — publish and read a key,
// deposit, the push on the recipient's stream, fetch and delete by the
// recipient only, the documented errors, and a restart that keeps the mail.
func TestMailboxOverHTTPS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	ms := startMailServer(t, dir, "", app.MailboxOptions{Quota: ports.MailQuota{Count: 3, Bytes: 1 << 20}}, registry.MailboxConfig{})
	alice, bob := newMailUser(t, ctx, ms.url, "alice"), newMailUser(t, ctx, ms.url, "bob")

	got, err := alice.c.Prekey(ctx, bob.me.Name())
	if err != nil || !bytes.Equal(got.Public, bob.prekey.Public) || got.KeyID != 1 ||
		app.CheckPrekey(bob.me.Identity, got, time.Now()) != nil {
		t.Fatalf("bob's key as alice reads it: %v", err)
	}
	if _, err := alice.c.Prekey(ctx, domain.MustUsername("nobody")); !errors.Is(err, domain.ErrUnknownPeer) {
		t.Fatalf("key of an unknown name: %v", err)
	}
	// A key signed by someone else is refused.
	forged := bob.prekey
	forged.Signature = alice.me.Sign([]byte("anything"))
	if err := bob.c.PublishPrekey(ctx, forged); !errors.Is(err, domain.ErrBadSignature) {
		t.Fatalf("publishing a badly signed key: %v, want ErrBadSignature", err)
	}

	waiting, err := bob.c.MailWaiting(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-waiting // the first look, at once
	for i := range 3 {
		if _, err := alice.c.Deposit(ctx, bob.me.Name(), alice.sealTo(t, bob, fmt.Sprint("mail ", i)), time.Hour); err != nil {
			t.Fatalf("deposit %d: %v", i, err)
		}
	}
	select {
	case <-waiting:
	case <-ctx.Done():
		t.Fatal("bob's stream never said mail arrived")
	}
	if _, err := alice.c.Deposit(ctx, bob.me.Name(), alice.sealTo(t, bob, "one too many"), time.Hour); !errors.Is(err, ports.ErrMailboxFull) {
		t.Fatalf("deposit over the quota: %v, want ErrMailboxFull", err)
	}
	if _, err := alice.c.Deposit(ctx, bob.me.Name(), make([]byte, ports.MaxMailSize+1), time.Hour); !errors.Is(err, domain.ErrTooLarge) {
		t.Fatalf("oversized deposit: %v", err)
	}
	if _, err := alice.c.Deposit(ctx, domain.MustUsername("nobody"), []byte{1}, time.Hour); !errors.Is(err, domain.ErrUnknownPeer) {
		t.Fatalf("deposit for an unknown name: %v", err)
	}

	// Alice cannot read bob's mail: her proof is for her own box.
	if batch, err := alice.c.Fetch(ctx); err != nil || len(batch.Mail) != 0 {
		t.Fatalf("alice's own mailbox: %d mails, %v", len(batch.Mail), err)
	}

	// A restart keeps the mail.
	addr := ms.srv.Addr().String()
	ms.stop()
	ms = startMailServer(t, dir, addr, app.MailboxOptions{}, registry.MailboxConfig{})
	bob2 := &mailUser{me: bob.me, c: newClient(t, ms.url, t.TempDir()), ring: bob.ring}
	if err := bob2.c.Register(ctx, bob.me, domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	batch, err := bob2.c.Fetch(ctx)
	if err != nil || len(batch.Mail) != 3 || batch.More {
		t.Fatalf("bob's fetch after the restart: %d mails (more %v), %v", len(batch.Mail), batch.More, err)
	}
	s := seal.New()
	var ids []ports.MailID
	for i, m := range batch.Mail {
		l, err := s.Open(bob.me.Identity, func(id uint32) ([]byte, bool) { b, ok := bob.ring[id]; return b, ok }, m.Blob, time.Now())
		if err != nil || l.Envelope.Body != fmt.Sprint("mail ", i) || !l.From.SameKey(alice.me.PublicKey()) {
			t.Fatalf("mail %d: %q from %s, %v", i, l.Envelope.Body, l.From.Name(), err)
		}
		ids = append(ids, m.ID)
	}
	if err := bob2.c.Delete(ctx, ids[:2]); err != nil {
		t.Fatal(err)
	}
	if batch, err := bob2.c.Fetch(ctx); err != nil || len(batch.Mail) != 1 || batch.Mail[0].ID != ids[2] {
		t.Fatalf("after deleting two: %d mails, %v", len(batch.Mail), err)
	}
}
