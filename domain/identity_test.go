package domain_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"regexp"
	"testing"

	"github.com/chatx/chatx/domain"
)

func newKey(t testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func TestIdentityDerivations(t *testing.T) {
	t.Parallel()
	pub, _ := newKey(t)
	id, err := domain.NewIdentity(domain.MustUsername("alice"), pub)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(id.PeerID()); !regexp.MustCompile(`^[a-z2-7]{32}$`).MatchString(got) {
		t.Errorf("PeerID %q is not 32 base32 characters", got)
	}
	fp := id.Fingerprint().String()
	if !regexp.MustCompile(`^([0-9a-f]{4} ){15}[0-9a-f]{4}$`).MatchString(fp) {
		t.Errorf("fingerprint %q is not 16 groups of 4 hex digits", fp)
	}
	if id.Fingerprint().Short() != fp[:19] {
		t.Errorf("Short() = %q", id.Fingerprint().Short())
	}
	if !id.SameKey(pub) {
		t.Error("SameKey(own key) = false")
	}
	other, _ := newKey(t)
	if id.SameKey(other) || id.PeerID() == domain.PeerIDOf(other) {
		t.Error("another key matched")
	}
	if _, err := domain.NewIdentity(domain.MustUsername("alice"), pub[:10]); !errors.Is(err, domain.ErrInvalidKey) {
		t.Errorf("short key: err = %v", err)
	}
}

func TestSafetyNumberIsSymmetricAndChangesWithEitherKey(t *testing.T) {
	t.Parallel()
	a, _ := newKey(t)
	b, _ := newKey(t)
	c, _ := newKey(t)
	ab, ba := domain.SafetyNumber(a, b), domain.SafetyNumber(b, a)
	if ab != ba {
		t.Fatalf("not symmetric: %s vs %s", ab, ba)
	}
	if !regexp.MustCompile(`^(\d{5} ){11}\d{5}$`).MatchString(ab) {
		t.Fatalf("safety number %q is not 12 groups of 5 digits", ab)
	}
	if domain.SafetyNumber(a, c) == ab || domain.SafetyNumber(c, b) == ab {
		t.Fatal("safety number did not change when a key changed")
	}
}

func TestLocalIdentitySigns(t *testing.T) {
	t.Parallel()
	_, priv := newKey(t)
	me, err := domain.NewLocalIdentity(domain.MustUsername("alice"), priv)
	if err != nil {
		t.Fatal(err)
	}
	sig := me.Sign([]byte("hello"))
	if err := domain.Verify(me.PublicKey(), []byte("hello"), sig); err != nil {
		t.Fatal(err)
	}
	if err := domain.Verify(me.PublicKey(), []byte("hellO"), sig); !errors.Is(err, domain.ErrBadSignature) {
		t.Fatalf("tampered message: err = %v", err)
	}
}

func TestRegistryProofBindsEveryField(t *testing.T) {
	t.Parallel()
	_, priv := newKey(t)
	me, _ := domain.NewLocalIdentity(domain.MustUsername("alice"), priv)
	base := domain.RegistryProof{
		Action: domain.ActionRegister, Name: me.Name(), Key: me.PublicKey(),
		Challenge: make([]byte, domain.ChallengeSize),
		Endpoints: domain.Endpoints{Link: []string{"10.0.0.1:4000"}, File: []string{"10.0.0.1:4001"}},
	}
	sig := base.Sign(me)
	if err := base.Check(sig); err != nil {
		t.Fatal(err)
	}
	other, _ := newKey(t)
	mutations := map[string]func(p *domain.RegistryProof){
		"action":    func(p *domain.RegistryProof) { p.Action = domain.ActionUnregister },
		"name":      func(p *domain.RegistryProof) { p.Name = domain.MustUsername("mallory") },
		"key":       func(p *domain.RegistryProof) { p.Key = other },
		"challenge": func(p *domain.RegistryProof) { p.Challenge = append([]byte{1}, p.Challenge[1:]...) },
		"link":      func(p *domain.RegistryProof) { p.Endpoints.Link = []string{"6.6.6.6:4000"} },
		"file":      func(p *domain.RegistryProof) { p.Endpoints.File = nil },
		// moving a boundary between fields must not give the same bytes
		"boundary": func(p *domain.RegistryProof) {
			p.Endpoints.Link = []string{"10.0.0.1:4000", "10.0.0.1:4001"}
			p.Endpoints.File = nil
		},
	}
	for name, mutate := range mutations {
		p := base
		p.Endpoints = domain.Endpoints{Link: append([]string(nil), base.Endpoints.Link...), File: append([]string(nil), base.Endpoints.File...)}
		mutate(&p)
		if err := p.Check(sig); err == nil {
			t.Errorf("signature still verifies after changing %s", name)
		}
	}
}

func TestContactCheckKey(t *testing.T) {
	t.Parallel()
	a, _ := newKey(t)
	b, _ := newKey(t)
	name := domain.MustUsername("bob")
	pinned, _ := domain.NewIdentity(name, a)
	presented, _ := domain.NewIdentity(name, b)
	c := domain.Contact{Identity: pinned}
	if err := c.CheckKey(pinned); err != nil {
		t.Fatal(err)
	}
	var kc *domain.KeyChangedError
	if err := c.CheckKey(presented); !errors.As(err, &kc) || kc.Old != pinned.Fingerprint() || kc.New != presented.Fingerprint() {
		t.Fatalf("err = %v, want KeyChangedError with both fingerprints", err)
	}
}
