package redisstore_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/redisstore"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/redistest"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

var prefixes atomic.Int64

// open connects a store with a prefix of its own to srv, so each subtest
// starts empty.
func open(t *testing.T, srv *redistest.Server) *redisstore.Store {
	t.Helper()
	s, cleanup, err := redisstore.Open(redisstore.Config{URL: redisstore.URL(srv.URL(0)),
		Prefix: fmt.Sprintf("t%d:", prefixes.Add(1)), StreamMaxLen: 50}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return s
}

// openPrefix connects another store (another node) to srv under prefix.
func openPrefix(t *testing.T, srv *redistest.Server, prefix string) *redisstore.Store {
	t.Helper()
	s, cleanup, err := redisstore.Open(redisstore.Config{URL: redisstore.URL(srv.URL(0)), Prefix: prefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func ident(t *testing.T, name string) domain.Identity {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.NewIdentity(domain.MustUsername(name), pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAccountStoreContract(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	contract.AccountStore(t, func(t *testing.T) ports.AccountStore { return redisstore.NewAccounts(open(t, srv)) })
}

func TestPresenceStoreContract(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	contract.PresenceStore(t, func(t *testing.T) ports.PresenceStore { return redisstore.NewPresence(open(t, srv)) })
}

// Two stores (two nodes) binding one name with different keys at once:
// exactly one binding wins, and both then read the winner's key.
func TestBindRaceBindsOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	nodes := []*redisstore.Accounts{redisstore.NewAccounts(openPrefix(t, srv, "race:")), redisstore.NewAccounts(openPrefix(t, srv, "race:"))}
	for round := range 20 {
		name := fmt.Sprintf("racer%d", round)
		ids := []domain.Identity{ident(t, name), ident(t, name)}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { errs[i] = nodes[i].Bind(ctx(t), ids[i], time.Now()) })
		}
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				for _, n := range nodes {
					got, err := n.Get(ctx(t), ids[i].Name())
					if err != nil || !got.SameKey(ids[i].PublicKey()) {
						t.Fatalf("round %d: node reads %v (%v), want the winner's key", round, got.Fingerprint(), err)
					}
				}
			case !errors.Is(err, domain.ErrNameTaken):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d bindings won, want exactly 1 (%v)", round, winners, errs)
		}
	}
}

func TestRemoveSessionOnlyOnceAndOnlyThatSession(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s := open(t, srv)
	p1, p2 := redisstore.NewPresence(s), redisstore.NewPresence(s)
	alice := ident(t, "alice")
	old, cur := sha256.Sum256([]byte("old")), sha256.Sum256([]byte("cur"))
	if err := p1.Put(ctx(t), ports.Presence{Identity: alice, TokenHash: cur, ExpiresAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if ok, err := p1.RemoveSession(ctx(t), alice.Name(), old); err != nil || ok {
		t.Fatalf("removing a replaced session: %v, %v; want false (the new one stays)", ok, err)
	}
	if _, err := p2.Get(ctx(t), alice.Name()); err != nil {
		t.Fatalf("the live session is gone: %v", err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for _, p := range []*redisstore.Presence{p1, p2, p1, p2} {
		wg.Go(func() {
			if ok, err := p.RemoveSession(ctx(t), alice.Name(), cur); err != nil {
				t.Error(err)
			} else if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d removals won, want exactly 1", wins.Load())
	}
	if _, err := p1.Get(ctx(t), alice.Name()); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("after removal: %v, want ErrNotFound", err)
	}
}

// Every field of ports.Presence survives the store (the record embeds it,
// so fields added later do too).
func TestPresenceKeepsEveryField(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := redisstore.NewPresence(open(t, srv))
	now := time.Now().UTC().Truncate(time.Millisecond)
	in := ports.Presence{
		Identity:  ident(t, "alice"),
		Endpoints: domain.Endpoints{Link: []string{"10.0.0.1:1"}, File: []string{"10.0.0.1:2"}, NAT: domain.NATEndpointIndependent, Candidates: []domain.Candidate{{Type: domain.CandidateHost, Net: "tcp", Addr: "10.0.0.1:1", Scope: domain.ScopePrivate}}},
		Host:      domain.Endpoints{Link: []string{"10.0.0.1:1"}},
		Pending:   domain.Endpoints{File: []string{"203.0.113.9:2"}},
		TokenHash: sha256.Sum256([]byte("t")),
		ExpiresAt: now.Add(time.Minute), Since: now,
		STUN:        ports.STUNCredentials{Username: "u", Key: []byte{1, 2, 3}},
		Changes:     2.5,
		ChangesAt:   now,
		Unpublished: true,
	}
	in.Mapped[1] = ports.MappedAddr{At: now}
	if err := p.Put(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	got, err := p.Get(ctx(t), in.Identity.Name())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", in); a != b {
		t.Fatalf("stored presence differs:\n got %s\nwant %s", a, b)
	}
}

func TestChallengesSingleUseAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	n1 := redisstore.NewChallenges(openPrefix(t, srv, "ch:"))
	other := redisstore.NewChallenges(openPrefix(t, srv, "ch:")) // another node on the same Redis
	now := time.Now()
	c := []byte("0123456789abcdef0123456789abcdef")
	if err := n1.Issue(ctx(t), c, "10.0.0.1", 2, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for _, n := range []*redisstore.Challenges{n1, other, n1, other} {
		wg.Go(func() {
			if err := n.Consume(ctx(t), c, now); err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ports.ErrChallengeInvalid) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("challenge used %d times, want once", ok.Load())
	}
	// Expired by the registry's clock: refused even if Redis still has it.
	if err := n1.Issue(ctx(t), c, "", 2, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := other.Consume(ctx(t), c, now.Add(time.Minute)); !errors.Is(err, ports.ErrChallengeInvalid) {
		t.Fatalf("expired challenge: %v, want ErrChallengeInvalid", err)
	}
	// Per-client cap, and a used challenge gives its slot back.
	c1, c2, c3 := []byte("a"), []byte("b"), []byte("c")
	for _, ch := range [][]byte{c1, c2} {
		if err := n1.Issue(ctx(t), ch, "10.0.0.2", 2, now, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Issue(ctx(t), c3, "10.0.0.2", 2, now, time.Minute); !errors.Is(err, ports.ErrBusy) {
		t.Fatalf("third challenge for one client: %v, want ErrBusy", err)
	}
	if err := other.Issue(ctx(t), c3, "10.0.0.3", 2, now, time.Minute); err != nil {
		t.Fatalf("another client is not affected: %v", err)
	}
	if err := other.Consume(ctx(t), c1, now); err != nil {
		t.Fatal(err)
	}
	if err := n1.Issue(ctx(t), []byte("d"), "10.0.0.2", 2, now, time.Minute); err != nil {
		t.Fatalf("after one was used: %v", err)
	}
}

func event(id domain.Identity, online bool) domain.PresenceEvent {
	return domain.PresenceEvent{Peer: domain.Peer{Identity: id, Online: online, Endpoints: domain.Endpoints{Link: []string{"10.0.0.1:7"}}, LastSeen: time.Now().UTC().Truncate(time.Second)}}
}

// A follower on one node sees what another publishes, in order, and after
// Redis restarts (with its append-only file) reads on from its last ID:
// nothing published meanwhile is lost or seen twice.
func TestBusFollowsAcrossNodesAndRedisRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	pub, sub := redisstore.NewBus(openPrefix(t, srv, "restart:")), redisstore.NewBus(openPrefix(t, srv, "restart:"))
	got := make(chan ports.PresenceUpdate, 100)
	fctx, stop := context.WithCancel(context.Background())
	defer stop()
	followed := make(chan error, 1)
	notified := make(chan error, 100)
	go func() {
		followed <- sub.Follow(fctx, "", func(u ports.PresenceUpdate) { got <- u }, func(err error) {
			select {
			case notified <- err:
			default:
			}
		})
	}()
	alice := ident(t, "alice")
	// Follow starts at the stream's end; publish until the follower sees one.
	var first ports.PresenceUpdate
	for first.ID == "" {
		if _, err := pub.Publish(ctx(t), event(alice, true)); err != nil {
			t.Fatal(err)
		}
		select {
		case first = <-got:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if !first.Event.Peer.Identity.SameKey(alice.PublicKey()) || !first.Event.Peer.Online || first.Event.Peer.Endpoints.Link[0] != "10.0.0.1:7" {
		t.Fatalf("followed event %+v, want alice online at 10.0.0.1:7", first.Event.Peer)
	}
	for len(got) > 0 {
		<-got
	}
	srv.Stop()
	select {
	case <-notified: // the follower noticed
	case <-time.After(20 * time.Second):
		t.Fatal("follower did not notice that Redis went away")
	}
	srv.Start()
	var ids []string
	for i := range 5 {
		id, err := pub.Publish(ctx(t), event(ident(t, fmt.Sprintf("user%d", i)), i%2 == 0))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, want := range ids {
		select {
		case u := <-got:
			if u.ID != want || u.Event.Peer.Name().String() != fmt.Sprintf("user%d", i) {
				t.Fatalf("event %d after the restart: %s %s, want %s user%d", i, u.ID, u.Event.Peer.Name(), want, i)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("event %d after the restart not followed", i)
		}
	}
	// Since: from any ID kept, the rest in order; from a trimmed one, a gap.
	rest, err := sub.Since(ctx(t), ids[1], 0)
	if err != nil || len(rest) != 3 || rest[0].ID != ids[2] || rest[2].ID != ids[4] {
		t.Fatalf("Since(%s): %d events (%v), want the last 3", ids[1], len(rest), err)
	}
	if _, err := sub.Since(ctx(t), "nonsense", 0); !errors.Is(err, ports.ErrResumeGap) {
		t.Fatalf("Since of a malformed ID: %v, want ErrResumeGap", err)
	}
	if _, err := sub.Since(ctx(t), "99999999999999-0", 0); !errors.Is(err, ports.ErrResumeGap) {
		t.Fatalf("Since of an ID beyond the stream: %v, want ErrResumeGap", err)
	}
	stop()
	if err := <-followed; err != nil {
		t.Fatalf("Follow after ctx ended: %v", err)
	}
}

func TestBusSinceTrimmedIsAGap(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, cleanup, err := redisstore.Open(redisstore.Config{URL: redisstore.URL(srv.URL(0)), Prefix: "trim:", StreamMaxLen: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	b := redisstore.NewBus(s)
	alice := ident(t, "alice")
	first, err := b.Publish(ctx(t), event(alice, true))
	if err != nil {
		t.Fatal(err)
	}
	for range 500 { // MAXLEN ~ trims whole nodes of 100 entries
		if _, err := b.Publish(ctx(t), event(alice, false)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Since(ctx(t), first, 0); !errors.Is(err, ports.ErrResumeGap) {
		t.Fatalf("Since a trimmed ID: %v, want ErrResumeGap", err)
	}
}

func mail(t *testing.T, to string, n int, blob int, dep, exp time.Time) ports.Mail {
	var id ports.MailID
	id[0], id[1] = byte(n), byte(n>>8)
	return ports.Mail{ID: id, To: domain.MustUsername(to), Blob: make([]byte, blob), Deposited: dep, Expires: exp}
}

func TestMailbox(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	mb := redisstore.NewMailbox(open(t, srv))
	t0 := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	q := ports.MailQuota{Count: 3, Bytes: 100}
	for i := range 3 {
		if err := mb.Put(ctx(t), mail(t, "bob", i, 30, t0.Add(time.Duration(i)*time.Second), t0.Add(time.Hour)), q); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	if err := mb.Put(ctx(t), mail(t, "bob", 9, 1, t0.Add(5*time.Second), t0.Add(time.Hour)), q); !errors.Is(err, ports.ErrMailboxFull) {
		t.Fatalf("fourth mail: %v, want ErrMailboxFull", err)
	}
	if err := mb.Put(ctx(t), mail(t, "carol", 9, 101, t0, t0.Add(time.Hour)), q); !errors.Is(err, ports.ErrMailboxFull) {
		t.Fatalf("mail over the byte quota: %v, want ErrMailboxFull", err)
	}
	if err := mb.Put(ctx(t), mail(t, "carol", 10, 100, t0, t0.Add(time.Minute)), q); err != nil {
		t.Fatalf("carol's own quota: %v", err)
	}
	got, err := mb.List(ctx(t), domain.MustUsername("BOB"), t0.Add(10*time.Second), 0)
	if err != nil || len(got) != 3 {
		t.Fatalf("List: %d (%v), want 3", len(got), err)
	}
	for i, m := range got {
		if m.ID[0] != byte(i) || len(m.Blob) != 30 || !m.Deposited.Equal(t0.Add(time.Duration(i)*time.Second)) || m.To.String() != "bob" {
			t.Fatalf("mail %d: %+v, want oldest first with its blob", i, m)
		}
	}
	if l, _ := mb.List(ctx(t), domain.MustUsername("bob"), t0, 2); len(l) != 2 || l[1].ID[0] != 1 {
		t.Fatalf("List limit 2: %d", len(l))
	}
	if err := mb.Delete(ctx(t), domain.MustUsername("bob"), []ports.MailID{got[0].ID, {0xff}}); err != nil {
		t.Fatal(err)
	}
	if l, _ := mb.List(ctx(t), domain.MustUsername("bob"), t0, 0); len(l) != 2 || l[0].ID[0] != 1 {
		t.Fatalf("after Delete: %d mails", len(l))
	}
	if err := mb.Put(ctx(t), mail(t, "bob", 3, 30, t0.Add(20*time.Second), t0.Add(time.Hour)), q); err != nil {
		t.Fatalf("Put after a Delete freed room: %v", err)
	}
	// carol's mail expires at t0+1m: hidden from List, removed once by Expire.
	if l, _ := mb.List(ctx(t), domain.MustUsername("carol"), t0.Add(time.Minute), 0); len(l) != 0 {
		t.Fatalf("expired mail listed: %d", len(l))
	}
	other := redisstore.NewMailbox(open(t, srv)) // another prefix: sees nothing
	if n, err := other.Expire(ctx(t), t0.Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("Expire on an empty store: %d, %v", n, err)
	}
	var total atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			n, err := mb.Expire(ctx(t), t0.Add(2*time.Minute))
			if err != nil {
				t.Error(err)
			}
			total.Add(int32(n))
		})
	}
	wg.Wait()
	if total.Load() != 1 {
		t.Fatalf("concurrent Expire counted %d mails, want 1", total.Load())
	}
	// Expired mail no longer counts against the quota.
	if err := mb.Put(ctx(t), mail(t, "carol", 11, 100, t0.Add(2*time.Minute), t0.Add(time.Hour)), q); err != nil {
		t.Fatalf("Put after expiry freed room: %v", err)
	}
}

func TestPrekeys(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := redisstore.NewPrekeys(open(t, srv))
	if _, err := p.GetPrekey(ctx(t), domain.MustUsername("bob")); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("GetPrekey of none: %v", err)
	}
	t0 := time.Now().UTC().Truncate(time.Second)
	for i := uint32(1); i <= 2; i++ {
		k := ports.SignedPrekey{Name: domain.MustUsername("Bob"), KeyID: i, Public: []byte{byte(i)}, Suite: "x25519-hkdf-sha256/chacha20poly1305", Created: t0, Expires: t0.Add(time.Hour), Signature: []byte("sig")}
		if err := p.PutPrekey(ctx(t), k); err != nil {
			t.Fatal(err)
		}
	}
	k, err := p.GetPrekey(ctx(t), domain.MustUsername("bob"))
	if err != nil || k.KeyID != 2 || k.Public[0] != 2 || k.Name.String() != "bob" || !k.Expires.Equal(t0.Add(time.Hour)) || string(k.Signature) != "sig" {
		t.Fatalf("GetPrekey: %+v, %v; want key 2", k, err)
	}
}

func TestMailboxStoreContract(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	contract.MailboxStore(t, func(t *testing.T) ports.MailboxStore { return redisstore.NewMailbox(open(t, srv)) })
}

func TestPrekeyStoreContract(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	contract.PrekeyStore(t, func(t *testing.T) ports.PrekeyStore { return redisstore.NewPrekeys(open(t, srv)) })
}
