package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// TestRegistryMailboxProofs: only the name's key, over a fresh challenge
// and for the right action, fetches or deletes a mailbox.
func TestRegistryMailboxProofs(t *testing.T) {
	ctx := context.Background()
	reg := runRegistry(t)
	mb, err := app.NewRegistryMailbox(reg, memory.NewMailboxStore(), memory.NewPrekeyStore(), app.MailboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bob, mallory := mkLocal(t, "bob"), mkLocal(t, "mallory")
	for _, id := range []domain.LocalIdentity{bob, mallory} {
		ch, _ := reg.Challenge(ctx)
		p := domain.RegistryProof{Action: domain.ActionRegister, Name: id.Name(), Key: id.PublicKey(), Challenge: ch}
		if _, err := reg.Register(ctx, ports.RegisterRequest{Proof: p, Signature: p.Sign(id)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Truncate(time.Second)
	k := ports.SignedPrekey{Name: bob.Name(), KeyID: 9, Public: []byte("public"), Suite: "s", Created: now, Expires: now.Add(time.Hour)}
	k.Signature = bob.Sign(domain.PrekeySigningBytes(k.Name, bob.PublicKey(), k.KeyID, k.Suite, k.Public, k.Created, k.Expires))
	if err := mb.PublishPrekey(ctx, ports.SessionInfo{Identity: mallory.Identity}, k); err == nil {
		t.Fatal("mallory's session published bob's key")
	}
	if err := mb.PublishPrekey(ctx, ports.SessionInfo{Identity: bob.Identity}, k); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Deposit(ctx, ports.SessionInfo{Identity: mallory.Identity}, bob.Name(), []byte("sealed"), 0); err != nil {
		t.Fatal(err)
	}
	proof := func(as domain.LocalIdentity, name domain.Username, action domain.RegistryAction) (domain.RegistryProof, []byte) {
		ch, _ := reg.Challenge(ctx)
		p := domain.RegistryProof{Action: action, Name: name, Key: as.PublicKey(), Challenge: ch}
		return p, p.Sign(as)
	}
	p, sig := proof(mallory, bob.Name(), domain.ActionMailboxFetch)
	if _, err := mb.Fetch(ctx, p, sig, 0); !errors.Is(err, domain.ErrNameTaken) {
		t.Fatalf("mallory's key fetching bob's mail: %v, want ErrNameTaken", err)
	}
	p, sig = proof(bob, bob.Name(), domain.ActionMailboxDelete)
	if _, err := mb.Fetch(ctx, p, sig, 0); !errors.Is(err, domain.ErrBadSignature) {
		t.Fatalf("a delete proof used to fetch: %v, want ErrBadSignature", err)
	}
	p, sig = proof(bob, bob.Name(), domain.ActionMailboxFetch)
	batch, err := mb.Fetch(ctx, p, sig, 0)
	if err != nil || len(batch.Mail) != 1 || string(batch.Mail[0].Blob) != "sealed" {
		t.Fatalf("bob's fetch: %+v, %v", batch, err)
	}
	if batch.Mail[0].Expires.Sub(batch.Mail[0].Deposited) != ports.DefaultMailTTL {
		t.Fatalf("default expiry %v, want %v", batch.Mail[0].Expires.Sub(batch.Mail[0].Deposited), ports.DefaultMailTTL)
	}
	if _, err := mb.Fetch(ctx, p, sig, 0); !errors.Is(err, ports.ErrChallengeInvalid) {
		t.Fatalf("a replayed fetch proof: %v, want ErrChallengeInvalid", err)
	}
	if _, err := mb.Deposit(ctx, ports.SessionInfo{Identity: bob.Identity}, bob.Name(), []byte("x"), ports.MaxMailTTL+time.Second); err == nil {
		t.Fatal("a deposit for longer than 30 days was taken")
	}
	if _, err := mb.Deposit(ctx, ports.SessionInfo{Identity: bob.Identity}, mallory.Name(), []byte("x"), 0); !errors.Is(err, ports.ErrPrekeyMissing) {
		t.Fatalf("deposit for a user without a mailbox key: %v, want ErrPrekeyMissing", err)
	}
}
