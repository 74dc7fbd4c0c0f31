package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Group conversations end to end on the in-memory network.

func (n *node) groupHistory(id domain.GroupID) []domain.GroupMessage {
	n.c.t.Helper()
	h, err := n.groups.GroupHistory(context.Background(), id, time.Time{}, 100000)
	if err != nil {
		n.c.t.Fatal(err)
	}
	return h
}

func (n *node) groupState(id domain.GroupID) (domain.Group, bool) {
	n.c.t.Helper()
	v, err := n.client.GroupInfo(context.Background(), id)
	if errors.Is(err, domain.ErrUnknownGroup) {
		return domain.Group{}, false
	}
	if err != nil {
		n.c.t.Fatal(err)
	}
	return v.Group, true
}

func memberNames(g domain.Group) string {
	var s []string
	for _, m := range g.Members() {
		s = append(s, m.Name().String())
	}
	return strings.Join(s, ",")
}

// startGroup starts the nodes and makes a group of all of them, created by
// the first; it returns once every member holds the same state.
func startGroup(t *testing.T, nodes ...*node) domain.GroupID {
	t.Helper()
	for _, n := range nodes {
		n.mustStart()
	}
	var names []domain.Username
	for _, n := range nodes[1:] {
		names = append(names, n.me.Name())
	}
	g, err := nodes[0].client.CreateGroup(context.Background(), "team", names)
	if err != nil {
		t.Fatal(err)
	}
	converged(t, g.ID(), g.Epoch(), nodes...)
	return g.ID()
}

// converged waits until every node's state of the group is at epoch (the
// zero epoch: any epoch, the same for all).
func converged(t *testing.T, id domain.GroupID, epoch domain.Epoch, nodes ...*node) domain.Group {
	t.Helper()
	var last domain.Group
	eventually(t, "members agree on the group", func() bool {
		var first domain.Group
		for i, n := range nodes {
			g, ok := n.groupState(id)
			if !ok || (!epoch.IsZero() && g.Epoch() != epoch) {
				return false
			}
			if i == 0 {
				first = g
			} else if g.Epoch() != first.Epoch() {
				return false
			}
		}
		last = first
		return true
	})
	return last
}

// checkGroupHistory checks that n holds exactly want[sender] from each
// sender, in the order sent, and nothing else.
func checkGroupHistory(t *testing.T, n *node, id domain.GroupID, want map[string][]string) {
	t.Helper()
	got := map[string][]string{}
	seen := map[domain.MessageID]bool{}
	for _, m := range n.groupHistory(id) {
		if seen[m.ID()] {
			t.Fatalf("%s holds message %s twice", n.me.Name(), m.ID())
		}
		seen[m.ID()] = true
		got[m.From().String()] = append(got[m.From().String()], m.Body())
	}
	for from, w := range want {
		if fmt.Sprint(got[from]) != fmt.Sprint(w) {
			t.Fatalf("%s has %d messages from %s, want %d in order (first differing: %s)", n.me.Name(), len(got[from]), from, len(w), firstDiff(got[from], w))
		}
	}
	for from := range got {
		if _, ok := want[from]; !ok {
			t.Fatalf("%s holds %d unexpected messages from %s", n.me.Name(), len(got[from]), from)
		}
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("#%d %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

func TestE2EGroupThreeMembersThousandMessagesEachAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 group messages")
	}
	c := newCluster(t)
	nodes := []*node{c.newNode("alice"), c.newNode("bob"), c.newNode("carol")}
	id := startGroup(t, nodes...)
	const each = 1000
	want := map[string][]string{}
	for _, n := range nodes {
		for i := range each {
			want[n.me.Name().String()] = append(want[n.me.Name().String()], fmt.Sprintf("%s %04d", n.me.Name(), i))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, text := range want[n.me.Name().String()] {
				if _, err := n.client.SendGroup(context.Background(), id, text); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, "every member has all 3,000", func() bool {
		for _, n := range nodes {
			if len(n.groupHistory(id)) < len(nodes)*each {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		checkGroupHistory(t, n, id, want)
	}
	// Each sender sees each of its messages delivered to both others.
	for _, n := range nodes {
		eventually(t, n.me.Name().String()+"'s messages acknowledged by both", func() bool {
			for _, m := range n.groupHistory(id) {
				if !m.From().Equal(n.me.Name()) {
					continue
				}
				ds, err := n.client.GroupDeliveries(context.Background(), id, m.ID())
				if err != nil || len(ds) != 2 {
					return false
				}
				for _, d := range ds {
					if d.State != domain.MessageDelivered {
						return false
					}
				}
			}
			return true
		})
	}
}

func TestE2EGroupMemberOfflineGetsTheMessagesOnReturn(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	id := startGroup(t, alice, bob, carol)
	carol.stop()
	alice.waitPresence(carol, false)
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprintf("while you were out %d", i))
		if _, err := alice.client.SendGroup(context.Background(), id, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "bob has the 100", func() bool { return len(bob.groupHistory(id)) == 100 })
	m := alice.groupHistory(id)[99]
	ds, err := alice.client.GroupDeliveries(context.Background(), id, m.ID())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivered to bob, not carol", func() bool {
		ds, _ = alice.client.GroupDeliveries(context.Background(), id, m.ID())
		return fmt.Sprint(ds) == fmt.Sprint([]domain.GroupDelivery{{Member: bob.me.Name(), State: domain.MessageDelivered}, {Member: carol.me.Name(), State: ds[1].State}}) &&
			ds[1].State != domain.MessageDelivered
	})
	carol.mustStart()
	eventually(t, "carol has the 100 after her return", func() bool { return len(carol.groupHistory(id)) == 100 })
	checkGroupHistory(t, carol, id, map[string][]string{"alice": want})
	ev, err := waitGroupDelivery(alice, m.ID(), carol.me.Name())
	if err != nil {
		t.Fatal(err)
	}
	if ev.Delivered != 2 || ev.Of != 2 {
		t.Fatalf("last message: delivered to %d of %d, want 2 of 2", ev.Delivered, ev.Of)
	}
}

func waitGroupDelivery(n *node, id domain.MessageID, member domain.Username) (ports.GroupDeliveryEvent, error) {
	return waitEvent(n, func(e ports.GroupDeliveryEvent) bool {
		return e.ID == id && e.Member.Equal(member) && e.State == domain.MessageDelivered
	})
}

func waitEvent[E ports.Event](n *node, match func(E) bool) (E, error) {
	deadline := time.Now().Add(e2eTimeout)
	for time.Now().Before(deadline) {
		for _, ev := range n.events.Events() {
			if e, ok := ev.(E); ok && match(e) {
				return e, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var zero E
	return zero, fmt.Errorf("%s: no matching %T", n.me.Name(), zero)
}

func TestE2EGroupRemovedMemberReceivesNothingMore(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	id := startGroup(t, alice, bob, carol)
	ctx := context.Background()
	if _, err := alice.client.SendGroup(ctx, id, "before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "everyone has the first message", func() bool {
		return len(bob.groupHistory(id)) == 1 && len(carol.groupHistory(id)) == 1
	})
	if err := alice.client.RemoveMember(ctx, id, carol.me.Name()); err != nil {
		t.Fatal(err)
	}
	g := converged(t, id, domain.Epoch{}, alice, bob, carol)
	if memberNames(g) != "alice,bob" {
		t.Fatalf("after the removal: %s", memberNames(g))
	}
	if v, _ := carol.client.GroupInfo(ctx, id); v.Member {
		t.Fatal("carol still counts herself a member")
	}
	if _, err := carol.client.SendGroup(ctx, id, "can I still talk?"); !errors.Is(err, domain.ErrNotGroupMember) {
		t.Fatalf("carol sends after removal: %v", err)
	}
	for i := range 20 {
		if _, err := alice.client.SendGroup(ctx, id, fmt.Sprintf("alice after %d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.client.SendGroup(ctx, id, fmt.Sprintf("bob after %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "alice and bob have each other's 20", func() bool {
		return len(alice.groupHistory(id)) == 41 && len(bob.groupHistory(id)) == 41
	})
	// Every copy alice and bob made went to the other only: carol was
	// never sent one, so there is nothing in flight to wait for.
	for _, n := range []*node{alice, bob} {
		for _, m := range n.groupHistory(id) {
			if !m.From().Equal(n.me.Name()) || m.Body() == "before" {
				continue
			}
			ds, err := n.client.GroupDeliveries(ctx, id, m.ID())
			if err != nil || len(ds) != 1 || ds[0].Member.Equal(carol.me.Name()) {
				t.Fatalf("%s's %q went to %v (%v)", n.me.Name(), m.Body(), ds, err)
			}
		}
	}
	if h := carol.groupHistory(id); len(h) != 1 || h[0].Body() != "before" {
		t.Fatalf("carol holds %d messages, want only the one before her removal", len(h))
	}
}

func TestE2EGroupForgedRemovalIsRefusedByEveryMember(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	id := startGroup(t, alice, bob, carol)
	ctx := context.Background()
	// Through the client: bob is no admin.
	if err := bob.client.RemoveMember(ctx, id, carol.me.Name()); !errors.Is(err, domain.ErrNotGroupAdmin) {
		t.Fatalf("bob removes carol: %v, want ErrNotGroupAdmin", err)
	}
	// Bypassing his client: bob signs a removal of alice and carol and
	// writes it to both over his authenticated links.
	g, _ := bob.groupState(id)
	for _, victim := range []*node{alice, carol} {
		forged, err := domain.NewGroupEntry(bob.me, id, g.Epoch(), domain.GroupRemove, time.Now(), []domain.Identity{victim.me.Identity}, "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := app.EncodeGroupLog(id, []domain.GroupEntry{forged})
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []*node{alice, carol} {
			peer, err := bob.dir.Lookup(ctx, to.me.Name())
			if err != nil {
				t.Fatal(err)
			}
			if err := bob.host.Link().Send(ctx, peer, ports.Envelope{Kind: ports.KindGroupLog, Group: p}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A message bob sends after the forgeries reaches each of them after
	// the forgeries were handled (a link delivers in order).
	if _, err := bob.client.SendGroup(ctx, id, "after the forgery"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alice and carol have bob's message", func() bool {
		return len(alice.groupHistory(id)) == 1 && len(carol.groupHistory(id)) == 1
	})
	for _, n := range []*node{alice, bob, carol} {
		g, _ := n.groupState(id)
		if memberNames(g) != "alice,bob,carol" {
			t.Fatalf("%s: members %s after a forged removal", n.me.Name(), memberNames(g))
		}
	}
	converged(t, id, g.Epoch(), alice, bob, carol)
}

func TestE2EGroupConcurrentAdminChangesConverge(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol, dave := c.newNode("alice"), c.newNode("bob"), c.newNode("carol"), c.newNode("dave")
	dave.mustStart()
	id := startGroup(t, alice, bob, carol)
	ctx := context.Background()
	if err := alice.client.PromoteMember(ctx, id, bob.me.Name()); err != nil {
		t.Fatal(err)
	}
	converged(t, id, domain.Epoch{}, alice, bob, carol)
	// Both admins change the membership on the same epoch.
	var wg sync.WaitGroup
	var addErr, removeErr error
	wg.Add(2)
	go func() { defer wg.Done(); addErr = alice.client.AddMember(ctx, id, dave.me.Name()) }()
	go func() { defer wg.Done(); removeErr = bob.client.RemoveMember(ctx, id, carol.me.Name()) }()
	wg.Wait()
	if addErr != nil || removeErr != nil {
		t.Fatalf("add: %v; remove: %v", addErr, removeErr)
	}
	var g domain.Group
	eventually(t, "alice, bob and dave agree on alice,bob,dave", func() bool {
		var first domain.Epoch
		for i, n := range []*node{alice, bob, dave} {
			st, ok := n.groupState(id)
			if !ok || memberNames(st) != "alice,bob,dave" {
				return false
			}
			if i == 0 {
				first, g = st.Epoch(), st
			} else if st.Epoch() != first {
				return false
			}
		}
		return true
	})
	if !g.IsAdmin(bob.me.Name()) || g.IsMember(carol.me.Name()) {
		t.Fatalf("converged on %s", memberNames(g))
	}
	// The converged group works: dave hears alice, carol does not.
	if _, err := alice.client.SendGroup(ctx, id, "welcome dave"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "dave and bob have it", func() bool { return len(dave.groupHistory(id)) == 1 && len(bob.groupHistory(id)) == 1 })
	if len(carol.groupHistory(id)) != 0 {
		t.Fatal("carol, removed, was sent a message")
	}
}

func TestE2EGroupKeyChangeBlocksOnlyThatMember(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	id := startGroup(t, alice, bob, carol)
	ctx := context.Background()
	// alice now holds another key pinned for carol (as if carol's key had
	// changed and alice had not accepted it yet).
	other := mkLocal(t, "carol")
	if err := alice.trust.Replace(ctx, other.Identity, time.Now()); err != nil {
		t.Fatal(err)
	}
	m, err := alice.client.SendGroup(ctx, id, "only bob should get this for now")
	if err != nil {
		t.Fatalf("a key change of one member blocks the whole group: %v", err)
	}
	eventually(t, "bob has it", func() bool { return len(bob.groupHistory(id)) == 1 })
	if _, err := memoryWaitKeyChanged(alice, carol.me.Name()); err != nil {
		t.Fatal(err)
	}
	ds, _ := alice.client.GroupDeliveries(ctx, id, m.ID())
	if len(ds) != 2 || ds[0].State != domain.MessageDelivered || ds[1].State == domain.MessageDelivered {
		t.Fatalf("deliveries %v: want bob delivered, carol not", ds)
	}
	if len(carol.groupHistory(id)) != 0 {
		t.Fatal("carol got a message while her key change was pending")
	}
	// alice accepts carol's (real) key: the copy waiting for her goes out.
	if err := alice.client.AcceptKeyChange(ctx, carol.me.Name()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "carol has it after the key was accepted", func() bool { return len(carol.groupHistory(id)) == 1 })
}

func memoryWaitKeyChanged(n *node, name domain.Username) (ports.KeyChangedEvent, error) {
	return waitEvent(n, func(e ports.KeyChangedEvent) bool { return e.Name.Equal(name) })
}

func TestE2EGroupMemberOfflineAtCreationLearnsTheGroupOnReturn(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	alice.mustStart()
	bob.mustStart()
	carol.mustStart()
	alice.waitPresence(carol, true)
	carol.stop()
	alice.waitPresence(carol, false)
	g, err := alice.client.CreateGroup(context.Background(), "team", []domain.Username{bob.me.Name(), carol.me.Name()})
	if err != nil {
		t.Fatalf("a known member offline: %v", err)
	}
	converged(t, g.ID(), g.Epoch(), alice, bob)
	carol.mustStart()
	// Nothing is sent to the group: the log alone must reach her.
	converged(t, g.ID(), g.Epoch(), alice, bob, carol)
}

func TestE2EGroupCopiesToAMemberRemovedBeforeDeliveryAreDropped(t *testing.T) {
	c := newCluster(t)
	alice, bob, carol := c.newNode("alice"), c.newNode("bob"), c.newNode("carol")
	id := startGroup(t, alice, bob, carol)
	ctx := context.Background()
	carol.stop()
	alice.waitPresence(carol, false)
	m, err := alice.client.SendGroup(ctx, id, "queued for carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.client.RemoveMember(ctx, id, carol.me.Name()); err != nil {
		t.Fatal(err)
	}
	carol.mustStart()
	eventually(t, "the copy to carol is given up", func() bool {
		ds, err := alice.client.GroupDeliveries(ctx, id, m.ID())
		return err == nil && len(ds) == 2 && ds[1].Member.Equal(carol.me.Name()) && ds[1].State == domain.MessageFailed
	})
	if ms, _ := alice.groups.GroupOutbox(ctx, carol.me.Name()); len(ms) != 0 {
		t.Fatalf("%d copies still wait for carol", len(ms))
	}
}
