package contract

import (
	"errors"
	"strings"
	"testing"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ContactRelations checks the relation and nickname promises of
// ports.TrustStore. open returns a new, empty store for each subtest.
func ContactRelations(t *testing.T, open func(t *testing.T) ports.TrustStore) {
	t.Run("a pin is not a contact", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		bob := ident(t, "bob")
		if err := s.Pin(ctx, bob, at(1)); err != nil {
			t.Fatal(err)
		}
		c, err := s.Get(ctx, bob.Name())
		if err != nil || c.Relation != domain.RelationNone || c.IsContact() || c.Nickname != "" {
			t.Fatalf("fresh pin: relation %v nickname %q (%v), want none and no nickname", c.Relation, c.Nickname, err)
		}
	})
	t.Run("relation and nickname of an unknown name", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		if err := s.SetRelation(ctx, domain.MustUsername("nobody"), domain.RelationContact); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("SetRelation: %v, want ErrNotFound", err)
		}
		if err := s.SetNickname(ctx, domain.MustUsername("nobody"), "x"); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("SetNickname: %v, want ErrNotFound", err)
		}
	})
	t.Run("relation and nickname survive a pin, a key change and a replace", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		bob := ident(t, "bob")
		if err := s.Pin(ctx, bob, at(1)); err != nil {
			t.Fatal(err)
		}
		for _, r := range []domain.Relation{domain.RelationContact, domain.RelationBlocked, domain.RelationContact} {
			if err := s.SetRelation(ctx, domain.MustUsername("BOB"), r); err != nil {
				t.Fatalf("SetRelation %v: %v", r, err)
			}
			if c, _ := s.Get(ctx, bob.Name()); c.Relation != r {
				t.Fatalf("relation %v after setting %v", c.Relation, r)
			}
		}
		if err := s.SetNickname(ctx, bob.Name(), "Bobby ☕"); err != nil {
			t.Fatal(err)
		}
		_ = s.Pin(ctx, bob, at(2))
		var kc *domain.KeyChangedError
		if err := s.Pin(ctx, ident(t, "bob"), at(3)); !errors.As(err, &kc) {
			t.Fatalf("pin of another key: %v", err)
		}
		if err := s.Replace(ctx, ident(t, "bob"), at(4)); err != nil {
			t.Fatal(err)
		}
		c, err := s.Get(ctx, bob.Name())
		if err != nil || !c.IsContact() || c.Nickname != "Bobby ☕" {
			t.Fatalf("after Replace: relation %v nickname %q (%v), want contact, Bobby ☕", c.Relation, c.Nickname, err)
		}
		list, err := s.List(ctx)
		if err != nil || len(list) != 1 || !list[0].IsContact() || list[0].Nickname != "Bobby ☕" {
			t.Fatalf("List: %+v (%v)", list, err)
		}
		if err := s.SetNickname(ctx, bob.Name(), ""); err != nil {
			t.Fatal(err)
		}
		if c, _ := s.Get(ctx, bob.Name()); c.Nickname != "" {
			t.Fatalf("nickname %q after clearing", c.Nickname)
		}
	})
	t.Run("bad nicknames are refused", func(t *testing.T) {
		ctx, s := ctxFor(t), open(t)
		bob := ident(t, "bob")
		if err := s.Pin(ctx, bob, at(1)); err != nil {
			t.Fatal(err)
		}
		for _, nick := range []string{strings.Repeat("n", domain.MaxNicknameRunes+1), "a\x1b[2Jb", "evil\u202egnp", "\xff"} {
			if err := s.SetNickname(ctx, bob.Name(), nick); !errors.Is(err, domain.ErrInvalidNickname) {
				t.Errorf("SetNickname(%q): %v, want ErrInvalidNickname", nick, err)
			}
		}
	})
}

// QuarantineStore checks the promises of ports.QuarantineStore. open
// returns a new, empty store for each subtest.
func QuarantineStore(t *testing.T, open func(t *testing.T) ports.QuarantineStore) {
	me := domain.MustUsername("alice")
	chat := func(t *testing.T, from domain.Identity, body string, sec int) domain.HeldItem {
		t.Helper()
		m, err := domain.NewIncomingMessage(domain.NewMessageID(), from.Name(), me, at(sec), body)
		if err != nil {
			t.Fatal(err)
		}
		return domain.NewHeldChat(from, m, at(sec))
	}
	limits := domain.QuarantineLimits{PerPeerItems: 3, PerPeerBytes: 1000, TotalBytes: 2000, MaxPeers: 2}

	t.Run("empty", func(t *testing.T) {
		ctx, q := ctxFor(t), open(t)
		if r, err := q.Requests(ctx); err != nil || len(r) != 0 {
			t.Fatalf("Requests: %v %v", r, err)
		}
		if h, err := q.Held(ctx, me); err != nil || len(h) != 0 {
			t.Fatalf("Held: %v %v", h, err)
		}
		if n, err := q.Drop(ctx, me); err != nil || n != 0 {
			t.Fatalf("Drop: %d %v", n, err)
		}
	})

	t.Run("hold keeps order, kinds and content, once per key", func(t *testing.T) {
		ctx, q := ctxFor(t), open(t)
		eve := ident(t, "eve")
		first := chat(t, eve, "hello", 1)
		var h domain.FileEntry
		h.Path, h.Size, h.Hash[0] = "a/b.txt", 42, 7
		offer := domain.NewHeldOffer(eve, domain.NewTransferID(), domain.Manifest{Name: "a", Files: []domain.FileEntry{h}}, at(2))
		second := chat(t, eve, "second", 3)
		for _, it := range []domain.HeldItem{first, offer, second} {
			if ok, err := q.Hold(ctx, it, limits); err != nil || !ok {
				t.Fatalf("Hold %v: %v %v", it.Kind, ok, err)
			}
		}
		if ok, err := q.Hold(ctx, first, limits); err != nil || ok {
			t.Fatalf("Hold of a repeat: %v %v, want false, nil", ok, err)
		}
		got, err := q.Held(ctx, domain.MustUsername("EVE"))
		if err != nil || len(got) != 3 {
			t.Fatalf("Held: %d items (%v), want 3", len(got), err)
		}
		if got[0].Kind != domain.HeldChat || got[0].Message.ID() != first.Message.ID() || got[0].Message.Body() != "hello" ||
			!got[0].Message.SentAt().Equal(at(1)) || !got[0].From.SameKey(eve.PublicKey()) {
			t.Fatalf("first held item: %+v", got[0])
		}
		if got[1].Kind != domain.HeldOffer || got[1].TransferID != offer.TransferID || len(got[1].Manifest.Files) != 1 ||
			got[1].Manifest.Files[0] != h || got[1].Manifest.Name != "a" {
			t.Fatalf("held offer: %+v", got[1])
		}
		if got[2].Message.Body() != "second" {
			t.Fatalf("third held item: %q", got[2].Message.Body())
		}
		reqs, err := q.Requests(ctx)
		if err != nil || len(reqs) != 1 {
			t.Fatalf("Requests: %v %v", reqs, err)
		}
		r := reqs[0]
		want := first.Size() + offer.Size() + second.Size()
		if r.Items != 3 || r.Offers != 1 || r.Bytes != want || !r.First.Equal(at(1)) || !r.Last.Equal(at(3)) || !r.From.SameKey(eve.PublicKey()) {
			t.Fatalf("request %+v, want 3 items, 1 offer, %d bytes, first %v last %v", r, want, at(1), at(3))
		}
		if n, err := q.Drop(ctx, eve.Name()); err != nil || n != 3 {
			t.Fatalf("Drop: %d %v", n, err)
		}
		if h, _ := q.Held(ctx, eve.Name()); len(h) != 0 {
			t.Fatalf("%d items after Drop", len(h))
		}
	})

	t.Run("caps per stranger and in all", func(t *testing.T) {
		ctx, q := ctxFor(t), open(t)
		eve, mal, oscar := ident(t, "eve"), ident(t, "mal"), ident(t, "oscar")
		for i := range 3 {
			if _, err := q.Hold(ctx, chat(t, eve, "x", i), limits); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := q.Hold(ctx, chat(t, eve, "x", 4), limits); !errors.Is(err, domain.ErrQuarantineFull) {
			t.Fatalf("4th item: %v, want ErrQuarantineFull", err)
		}
		big := strings.Repeat("b", 1000)
		if _, err := q.Hold(ctx, chat(t, mal, big, 5), limits); !errors.Is(err, domain.ErrQuarantineFull) {
			t.Fatalf("item over the per-stranger bytes: %v, want ErrQuarantineFull", err)
		}
		if _, err := q.Hold(ctx, chat(t, mal, strings.Repeat("m", 900), 6), limits); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Hold(ctx, chat(t, oscar, "o", 7), limits); !errors.Is(err, domain.ErrQuarantineFull) {
			t.Fatalf("a third stranger: %v, want ErrQuarantineFull", err)
		}
		if h, _ := q.Held(ctx, oscar.Name()); len(h) != 0 {
			t.Fatal("a refused item was held")
		}
		reqs, _ := q.Requests(ctx)
		var total int64
		for _, r := range reqs {
			total += r.Bytes
		}
		if len(reqs) != 2 || total > limits.TotalBytes {
			t.Fatalf("%d requests, %d bytes: over the caps", len(reqs), total)
		}
		if _, err := q.Drop(ctx, eve.Name()); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Hold(ctx, chat(t, oscar, "o", 8), limits); err != nil {
			t.Fatalf("after a drop there is room: %v", err)
		}
		if reqs, _ := q.Requests(ctx); len(reqs) != 2 || !reqs[0].From.Name().Equal(mal.Name()) {
			t.Fatalf("requests after the drop: %+v, want mal then oscar", reqs)
		}
	})
}
