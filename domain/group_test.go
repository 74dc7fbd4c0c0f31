package domain_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
)

func localID(t testing.TB, name string) domain.LocalIdentity {
	t.Helper()
	_, priv := newKey(t)
	me, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return me
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newGroup makes a log created by admin with members.
func newGroup(t *testing.T, admin domain.LocalIdentity, members ...domain.LocalIdentity) *domain.GroupLog {
	t.Helper()
	var ids []domain.Identity
	for _, m := range members {
		ids = append(ids, m.Identity)
	}
	create, err := domain.NewGroupEntry(admin, domain.NewGroupID(), domain.Epoch{}, domain.GroupCreate, t0, ids, "team")
	if err != nil {
		t.Fatal(err)
	}
	l, err := domain.NewGroupLog(create)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func names(g domain.Group) string {
	s := ""
	for _, m := range g.Members() {
		if g.IsAdmin(m.Name()) {
			s += "*"
		}
		s += m.Name().String() + " "
	}
	return s
}

func TestGroupCreateAndChanges(t *testing.T) {
	t.Parallel()
	alice, bob, carol, dave := localID(t, "alice"), localID(t, "bob"), localID(t, "carol"), localID(t, "dave")
	l := newGroup(t, alice, bob, carol)
	if got := names(l.State()); got != "*alice bob carol " {
		t.Fatalf("members after create = %q", got)
	}
	created := l.Head()
	steps := []struct {
		by   domain.LocalIdentity
		c    domain.GroupChange
		want string
		err  error
	}{
		{alice, domain.GroupChange{Op: domain.GroupAdd, Members: []domain.Identity{dave.Identity}}, "*alice bob carol dave ", nil},
		{bob, domain.GroupChange{Op: domain.GroupRemove, Members: []domain.Identity{carol.Identity}}, "", domain.ErrNotGroupAdmin},
		{alice, domain.GroupChange{Op: domain.GroupPromote, Members: []domain.Identity{bob.Identity}}, "*alice *bob carol dave ", nil},
		{bob, domain.GroupChange{Op: domain.GroupRemove, Members: []domain.Identity{carol.Identity}}, "*alice *bob dave ", nil},
		{carol, domain.GroupChange{Op: domain.GroupLeave}, "", domain.ErrNotGroupMember},
		{dave, domain.GroupChange{Op: domain.GroupLeave}, "*alice *bob ", nil},
		{alice, domain.GroupChange{Op: domain.GroupAdd, Members: []domain.Identity{bob.Identity}}, "", domain.ErrBadGroupEntry},
		{bob, domain.GroupChange{Op: domain.GroupRename, Name: "ops"}, "*alice *bob ", nil},
	}
	for i, s := range steps {
		before := l.Head()
		_, err := l.Append(s.by, s.c, t0.Add(time.Duration(i+1)*time.Second))
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("step %d (%s by %s): err = %v, want %v", i, s.c.Op, s.by.Name(), err, s.err)
			}
			if l.Head() != before {
				t.Fatalf("step %d: a refused change moved the epoch", i)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d (%s by %s): %v", i, s.c.Op, s.by.Name(), err)
		}
		if got := names(l.State()); got != s.want {
			t.Fatalf("step %d: members %q, want %q", i, got, s.want)
		}
		if l.Head() == before {
			t.Fatalf("step %d: epoch did not move", i)
		}
	}
	if l.State().Name() != "ops" || !l.OnChain(created) {
		t.Fatalf("name %q, create on chain %v", l.State().Name(), l.OnChain(created))
	}
	// A peer rebuilding from the entries in any order reaches the same state.
	all := l.Entries()
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	r, err := domain.RebuildGroupLog(all)
	if err != nil {
		t.Fatal(err)
	}
	if r.Head() != l.Head() || names(r.State()) != names(l.State()) {
		t.Fatalf("rebuilt %s %q, want %s %q", r.Head().Short(), names(r.State()), l.Head().Short(), names(l.State()))
	}
}

// A non-admin member signs a removal on the head: it is a valid signature
// over a well-formed entry, and every log that receives it refuses to apply it.
func TestGroupForgedRemovalRefused(t *testing.T) {
	t.Parallel()
	alice, bob, carol := localID(t, "alice"), localID(t, "bob"), localID(t, "carol")
	l := newGroup(t, alice, bob, carol)
	forged, err := domain.NewGroupEntry(bob, l.ID(), l.Head(), domain.GroupRemove, t0, []domain.Identity{alice.Identity}, "")
	if err != nil {
		t.Fatal(err)
	}
	head := l.Head()
	changed, err := l.Add(forged)
	if err != nil || changed || l.Head() != head || !l.State().IsMember(alice.Name()) {
		t.Fatalf("forged removal: changed %v err %v; alice member %v", changed, err, l.State().IsMember(alice.Name()))
	}
	// An impostor with alice's name but another key is no admin either.
	impostor := localID(t, "alice")
	fake, err := domain.NewGroupEntry(impostor, l.ID(), l.Head(), domain.GroupRemove, t0, []domain.Identity{bob.Identity}, "")
	if err != nil {
		t.Fatal(err)
	}
	if changed, _ := l.Add(fake); changed || !l.State().IsMember(bob.Name()) {
		t.Fatal("a removal signed by another key under an admin's name was applied")
	}
	// A signature that does not verify is refused when the entry is decoded.
	_, err = domain.RestoreGroupEntry(forged.Group(), forged.Prev(), forged.Op(), forged.At(), alice.Identity, forged.Members(), forged.Name(), forged.Signature())
	if !errors.Is(err, domain.ErrBadSignature) {
		t.Fatalf("entry re-attributed to alice: err = %v, want ErrBadSignature", err)
	}
	// The forged entry off the chain is no reason for its author to rebase it later.
	if got := l.Rebase(bob.Name()); len(got) != 0 {
		// Rebase lists it (it lost), but signing it again still fails on rights.
		for _, c := range got {
			if _, err := l.Append(bob, c, t0); !errors.Is(err, domain.ErrNotGroupAdmin) {
				t.Fatalf("rebased forged removal: err = %v", err)
			}
		}
	}
}

// Two admins change the membership on the same epoch. Every order of
// arrival gives the same chain, and after the loser re-issues its change
// on the head, both changes hold everywhere.
func TestGroupConcurrentAdminsConverge(t *testing.T) {
	t.Parallel()
	alice, bob, carol, dave, erin := localID(t, "alice"), localID(t, "bob"), localID(t, "carol"), localID(t, "dave"), localID(t, "erin")
	base := newGroup(t, alice, bob, carol)
	if _, err := base.Append(alice, domain.GroupChange{Op: domain.GroupPromote, Members: []domain.Identity{bob.Identity}}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	head := base.Head()
	byAlice, err := domain.NewGroupEntry(alice, base.ID(), head, domain.GroupAdd, t0.Add(2*time.Second), []domain.Identity{dave.Identity}, "")
	if err != nil {
		t.Fatal(err)
	}
	byBob, err := domain.NewGroupEntry(bob, base.ID(), head, domain.GroupRemove, t0.Add(2*time.Second), []domain.Identity{carol.Identity}, "")
	if err != nil {
		t.Fatal(err)
	}
	byBob2, err := domain.NewGroupEntry(bob, base.ID(), byBob.Hash(), domain.GroupAdd, t0.Add(3*time.Second), []domain.Identity{erin.Identity}, "")
	if err != nil {
		t.Fatal(err)
	}
	concurrent := []domain.GroupEntry{byAlice, byBob, byBob2}
	var want domain.Epoch
	for i := range 20 {
		l, err := domain.RebuildGroupLog(base.Entries())
		if err != nil {
			t.Fatal(err)
		}
		order := append([]domain.GroupEntry(nil), concurrent...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, e := range order {
			if _, err := l.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			want = l.Head()
		} else if l.Head() != want {
			t.Fatalf("order %d: head %s, want %s", i, l.Head().Short(), want.Short())
		}
	}
	// The loser rebases; applying the rebased entries everywhere converges
	// on a state with both admins' changes.
	l, _ := domain.RebuildGroupLog(append(base.Entries(), concurrent...))
	loser := alice
	if l.OnChain(byAlice.Hash()) {
		loser = bob
	}
	var rebased []domain.GroupEntry
	for _, c := range l.Rebase(loser.Name()) {
		e, err := l.Append(loser, c, t0.Add(4*time.Second))
		if err != nil {
			t.Fatalf("rebase %s by %s: %v", c.Op, loser.Name(), err)
		}
		rebased = append(rebased, e)
	}
	if len(rebased) == 0 {
		t.Fatalf("%s lost the fork and has nothing to rebase", loser.Name())
	}
	if got := names(l.State()); got != "*alice *bob dave erin " && got != "*alice *bob erin dave " {
		t.Fatalf("after rebase: %q, want both changes", got)
	}
	if len(l.Rebase(loser.Name())) != 0 {
		t.Fatal("a rebased change is listed again")
	}
	other, _ := domain.RebuildGroupLog(append(append(base.Entries(), rebased...), concurrent...))
	if other.Head() != l.Head() {
		t.Fatal("a member receiving the rebased entries first ends elsewhere")
	}
}

func TestGroupLimitsAndShape(t *testing.T) {
	t.Parallel()
	alice := localID(t, "alice")
	var many []domain.Identity
	for i := range domain.MaxGroupMembers {
		many = append(many, localID(t, fmt.Sprintf("mem%d", i)).Identity)
	}
	if _, err := domain.NewGroupEntry(alice, domain.NewGroupID(), domain.Epoch{}, domain.GroupCreate, t0, many, "x"); !errors.Is(err, domain.ErrGroupFull) {
		t.Fatalf("create with 101 members: %v", err)
	}
	l := newGroup(t, alice)
	if _, err := l.Append(alice, domain.GroupChange{Op: domain.GroupAdd, Members: many[:domain.MaxGroupMembers-1]}, t0); err != nil {
		t.Fatalf("add to 100: %v", err)
	}
	if _, err := l.Append(alice, domain.GroupChange{Op: domain.GroupAdd, Members: []domain.Identity{localID(t, "late").Identity}}, t0); !errors.Is(err, domain.ErrGroupFull) {
		t.Fatalf("101st member: %v", err)
	}
	if _, err := domain.NewGroupEntry(alice, domain.NewGroupID(), domain.Epoch{}, domain.GroupCreate, t0, nil, " "); !errors.Is(err, domain.ErrBadGroupEntry) {
		t.Fatalf("blank name: %v", err)
	}
	if _, err := domain.NewGroupEntry(alice, domain.NewGroupID(), domain.Epoch{1}, domain.GroupCreate, t0, nil, "x"); !errors.Is(err, domain.ErrBadGroupEntry) {
		t.Fatalf("create with a prev: %v", err)
	}
	other := newGroup(t, alice)
	stray, _ := domain.NewGroupEntry(alice, other.ID(), other.Head(), domain.GroupRename, t0, nil, "y")
	if _, err := l.Add(stray); !errors.Is(err, domain.ErrBadGroupEntry) {
		t.Fatalf("entry of another group: %v", err)
	}
	// An entry whose prev is unknown waits and joins the chain when its prev arrives.
	c := newGroup(t, alice)
	e1, _ := domain.NewGroupEntry(alice, c.ID(), c.Head(), domain.GroupRename, t0, nil, "one")
	e2, _ := domain.NewGroupEntry(alice, c.ID(), e1.Hash(), domain.GroupRename, t0, nil, "two")
	if changed, _ := c.Add(e2); changed {
		t.Fatal("an entry with an unknown prev changed the state")
	}
	if changed, _ := c.Add(e1); !changed || c.State().Name() != "two" || c.Head() != e2.Hash() {
		t.Fatalf("after the missing entry: name %q", c.State().Name())
	}
}

func TestCopyIDDistinctPerMember(t *testing.T) {
	t.Parallel()
	id := domain.NewMessageID()
	a, b := domain.CopyID(id, domain.MustUsername("anna")), domain.CopyID(id, domain.MustUsername("bert"))
	if a == b || a == id || domain.CopyID(id, domain.MustUsername("Anna")) != a {
		t.Fatal("copy IDs are not distinct per member or not case-insensitive")
	}
}
