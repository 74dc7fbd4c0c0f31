package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// groupPushTimeout bounds writing a group's log to one member.
const groupPushTimeout = 5 * time.Second

// groupAckQueue bounds the group acknowledgements waiting to be written.
const groupAckQueue = 4096

// GroupBook holds the logs of our groups, loaded from the GroupStore on
// first use, and is what every group use-case changes them through: a
// change is signed on the head, stored, and written to every member (and to
// one just removed, so it learns); a log a member sends is merged, stored,
// answered with what the sender lacks, and our own changes that lost a
// fork are signed again on the new head (docs/peer-protocol.md, "Groups").
type GroupBook struct {
	me     domain.LocalIdentity
	link   ports.MessageLink
	store  ports.GroupStore
	verify *VerifyContact
	clock  ports.Clock
	events ports.EventSink

	mu     sync.Mutex
	loaded bool
	logs   map[domain.GroupID]*domain.GroupLog
	unread map[domain.GroupID]int

	// writes orders the envelopes of the group use-cases that are not
	// retried by an outbox (logs, acknowledgements); runWrites sends them.
	writes chan groupWrite
	// resolve finds where to write to a member: VerifyContact.PeerForSend,
	// or SendMessage's cache of it (newGroupParts sets that).
	resolve func(ctx context.Context, name domain.Username) (domain.Peer, error)
	// mayInvite says whether a peer may bring us into a group we do not
	// know yet (the client: only a contact); nil: anyone.
	mayInvite func(ctx context.Context, from domain.Identity) bool

	// pending holds, by member name key, the groups whose log could not be
	// written to that member: written again when it comes online and
	// every groupLogRetry. Owned by Run's goroutine but for memberOnline.
	pendMu  sync.Mutex
	pending map[string]pendingLogs
}

type pendingLogs struct {
	name   domain.Username
	groups map[domain.GroupID]bool
}

// groupLogRetry is how often logs that could not be written are tried again.
const groupLogRetry = 5 * time.Second

type groupWrite struct {
	to  domain.Username
	env ports.Envelope
}

// NewGroupBook builds the book.
func NewGroupBook(me domain.LocalIdentity, link ports.MessageLink, store ports.GroupStore, verify *VerifyContact, clock ports.Clock, events ports.EventSink) (*GroupBook, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case link == nil:
		return nil, errNilPort("message link")
	case store == nil:
		return nil, errNilPort("group store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &GroupBook{me: me, link: link, store: store, verify: verify, clock: clock, events: events,
		logs: map[domain.GroupID]*domain.GroupLog{}, unread: map[domain.GroupID]int{},
		writes: make(chan groupWrite, groupAckQueue), resolve: verify.PeerForSend,
		pending: map[string]pendingLogs{}}, nil
}

// load reads every group's log once; callers hold b.mu.
// errStrangerGroup: a group log from someone who is not a contact.
var errStrangerGroup = errors.New("only a contact can add us to a group")

func (b *GroupBook) load(ctx context.Context) error {
	if b.loaded {
		return nil
	}
	ids, err := b.store.GroupIDs(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	for _, id := range ids {
		entries, err := b.store.GroupEntries(ctx, id)
		if err != nil {
			return fmt.Errorf("read log of group %s: %w", id, err)
		}
		l, err := domain.RebuildGroupLog(entries)
		if err != nil {
			slog.Warn("stored group log does not verify", "group", id.String(), "err", err)
			continue
		}
		b.logs[id] = l
	}
	b.loaded = true
	return nil
}

// state returns a group's state; domain.ErrUnknownGroup if we have no log.
func (b *GroupBook) state(ctx context.Context, id domain.GroupID) (domain.Group, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.load(ctx); err != nil {
		return domain.Group{}, err
	}
	l, ok := b.logs[id]
	if !ok {
		return domain.Group{}, fmt.Errorf("group %s: %w", id, domain.ErrUnknownGroup)
	}
	return l.State(), nil
}

// knows reports whether the log of id holds the entry epoch.
func (b *GroupBook) knows(ctx context.Context, id domain.GroupID, epoch domain.Epoch) (domain.Group, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.load(ctx); err != nil {
		return domain.Group{}, false, err
	}
	l, ok := b.logs[id]
	if !ok {
		return domain.Group{}, false, nil
	}
	return l.State(), l.Has(epoch), nil
}

// all returns the state of every group.
func (b *GroupBook) all(ctx context.Context) ([]ports.GroupView, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.load(ctx); err != nil {
		return nil, err
	}
	var in, out []ports.GroupView
	for id, l := range b.logs {
		g := l.State()
		v := ports.GroupView{Group: g, Member: g.IsMember(b.me.Name()), Unread: b.unread[id]}
		if v.Member {
			in = append(in, v)
		} else {
			out = append(out, v)
		}
	}
	sortViews(in)
	sortViews(out)
	return append(in, out...), nil
}

func sortViews(vs []ports.GroupView) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && viewLess(vs[j], vs[j-1]); j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}

func viewLess(a, b ports.GroupView) bool {
	if a.Group.Name() != b.Group.Name() {
		return a.Group.Name() < b.Group.Name()
	}
	return a.Group.ID().String() < b.Group.ID().String()
}

// identityOf resolves a user to add: a known name (pinned, or found in the
// directory and pinned on first use) without a pending key change.
func (b *GroupBook) identityOf(ctx context.Context, name domain.Username) (domain.Identity, error) {
	if err := b.verify.Recipient(ctx, name); err != nil {
		return domain.Identity{}, err
	}
	c, err := b.verify.trust.Get(ctx, name)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("key of %s: %w", name, err)
	}
	return c.Identity, nil
}

// create signs and stores a new group.
func (b *GroupBook) create(ctx context.Context, name string, members []domain.Identity) (domain.Group, error) {
	e, err := domain.NewGroupEntry(b.me, domain.NewGroupID(), domain.Epoch{}, domain.GroupCreate, b.clock.Now(), members, name)
	if err != nil {
		return domain.Group{}, err
	}
	l, err := domain.NewGroupLog(e)
	if err != nil {
		return domain.Group{}, err
	}
	if err := b.store.SaveGroupEntries(ctx, e.Group(), []domain.GroupEntry{e}); err != nil {
		return domain.Group{}, fmt.Errorf("store group: %w", err)
	}
	b.mu.Lock()
	if err := b.load(ctx); err != nil {
		b.mu.Unlock()
		return domain.Group{}, err
	}
	b.logs[e.Group()] = l
	g := l.State()
	b.mu.Unlock()
	b.events.Publish(ports.GroupChangedEvent{Group: g, Member: true})
	b.push(ctx, g, nil, l.Entries())
	return g, nil
}

// change signs c on the head of a group's log, stores it and writes the
// log to every member before and after the change.
func (b *GroupBook) change(ctx context.Context, id domain.GroupID, c domain.GroupChange) (domain.Group, error) {
	b.mu.Lock()
	if err := b.load(ctx); err != nil {
		b.mu.Unlock()
		return domain.Group{}, err
	}
	l, ok := b.logs[id]
	if !ok {
		b.mu.Unlock()
		return domain.Group{}, fmt.Errorf("group %s: %w", id, domain.ErrUnknownGroup)
	}
	before := l.State()
	e, err := l.Append(b.me, c, b.clock.Now())
	if err != nil {
		b.mu.Unlock()
		return domain.Group{}, fmt.Errorf("%s in group %s: %w", c.Op, before.Name(), err)
	}
	// Stored under the lock, so a concurrent merge cannot store a later
	// state first; the store commits quickly and changes are rare.
	if err := b.store.SaveGroupEntries(ctx, id, []domain.GroupEntry{e}); err != nil {
		b.mu.Unlock()
		return domain.Group{}, fmt.Errorf("store %s: %w", c.Op, err)
	}
	g := l.State()
	entries := l.Entries()
	b.mu.Unlock()
	b.events.Publish(ports.GroupChangedEvent{Group: g, Member: g.IsMember(b.me.Name())})
	b.push(ctx, g, before.Members(), entries)
	return g, nil
}

// push queues the log to every member of g and of also, but us.
func (b *GroupBook) push(ctx context.Context, g domain.Group, also []domain.Identity, entries []domain.GroupEntry) {
	p, err := encodeGroupLog(g.ID(), entries)
	if err != nil {
		slog.Error("encode group log", "group", g.ID().String(), "err", err)
		return
	}
	seen := map[string]bool{b.me.Name().Key(): true}
	for _, m := range append(g.Members(), also...) {
		if seen[m.Name().Key()] {
			continue
		}
		seen[m.Name().Key()] = true
		b.write(ctx, m.Name(), ports.Envelope{Kind: ports.KindGroupLog, Group: p})
	}
}

// write queues an envelope for runWrites; when the queue is full it is
// dropped (a log is asked for again, a message written again by the outbox).
func (b *GroupBook) write(_ context.Context, to domain.Username, env ports.Envelope) {
	select {
	case b.writes <- groupWrite{to: to, env: env}:
	default:
		slog.Warn("group write queue full: envelope dropped", "peer", to.String(), "kind", int(env.Kind))
	}
}

// Run writes the queued envelopes until ctx is done. A log that could not
// be written to a member is written again (the group's log as it is then)
// when the member comes online (memberOnline) and every groupLogRetry; an
// acknowledgement is not: the member writes its message again.
func (b *GroupBook) Run(ctx context.Context) {
	retry := time.NewTicker(groupLogRetry)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			b.pendMu.Lock()
			names := make([]domain.Username, 0, len(b.pending))
			for _, p := range b.pending {
				names = append(names, p.name)
			}
			b.pendMu.Unlock()
			for _, n := range names {
				b.memberOnline(ctx, n)
			}
		case w := <-b.writes:
			peer, err := b.resolve(ctx, w.to)
			if err == nil {
				wctx, cancel := context.WithTimeout(ctx, groupPushTimeout)
				err = b.link.Send(wctx, peer, w.env)
				cancel()
			}
			if err != nil && ctx.Err() == nil {
				slog.Debug("group envelope not written", "peer", w.to.String(), "kind", int(w.env.Kind), "err", err)
			}
			if w.env.Kind == ports.KindGroupLog && len(w.env.Group) >= len(domain.GroupID{}) {
				b.logWritten(w.to, domain.GroupID(w.env.Group[:16]), err == nil)
			}
		}
	}
}

// logWritten records whether the log of group reached member.
func (b *GroupBook) logWritten(member domain.Username, group domain.GroupID, ok bool) {
	b.pendMu.Lock()
	defer b.pendMu.Unlock()
	p, has := b.pending[member.Key()]
	switch {
	case ok && has:
		delete(p.groups, group)
		if len(p.groups) == 0 {
			delete(b.pending, member.Key())
		}
	case !ok:
		if !has {
			p = pendingLogs{name: member, groups: map[domain.GroupID]bool{}}
			b.pending[member.Key()] = p
		}
		p.groups[group] = true
	}
}

// memberOnline writes again the logs that could not reach member.
func (b *GroupBook) memberOnline(ctx context.Context, member domain.Username) {
	b.pendMu.Lock()
	p, ok := b.pending[member.Key()]
	var groups []domain.GroupID
	if ok {
		for g := range p.groups {
			groups = append(groups, g)
		}
	}
	b.pendMu.Unlock()
	for _, g := range groups {
		b.mu.Lock()
		l, known := b.logs[g]
		var entries []domain.GroupEntry
		if known {
			entries = l.Entries()
		}
		b.mu.Unlock()
		if !known {
			b.logWritten(member, g, true)
			continue
		}
		if pl, err := encodeGroupLog(g, entries); err == nil {
			b.write(ctx, member, ports.Envelope{Kind: ports.KindGroupLog, Group: pl})
		}
	}
}

// merge takes the log a peer sent. A group we do not know is taken only if
// it lists us and the sender; a known one takes every entry (each is
// signed, and only valid ones join the chain). It answers the sender with
// our log when we hold entries it did not send, and signs again our own
// changes that lost a fork.
func (b *GroupBook) merge(ctx context.Context, from domain.Identity, id domain.GroupID, entries []domain.GroupEntry) error {
	b.mu.Lock()
	if err := b.load(ctx); err != nil {
		b.mu.Unlock()
		return err
	}
	l, known := b.logs[id]
	var before domain.Group
	if !known {
		nl, err := domain.RebuildGroupLog(entries)
		if err != nil {
			b.mu.Unlock()
			return fmt.Errorf("log of group %s from %s: %w", id, from.Name(), err)
		}
		// Only a contact brings us into a group (a stranger's group would
		// skip the message requests); the members it vouches for may then
		// write to us in that group.
		if b.mayInvite != nil && !b.mayInvite(ctx, from) {
			b.mu.Unlock()
			return fmt.Errorf("log of group %s from %s: %w", id, from.Name(), errStrangerGroup)
		}
		st := nl.State()
		me, isMe := st.Member(b.me.Name())
		sender, isSender := st.Member(from.Name())
		if !isMe || !me.SameKey(b.me.PublicKey()) || !isSender || !sender.SameKey(from.PublicKey()) {
			b.mu.Unlock()
			return fmt.Errorf("log of group %s from %s: %w", id, from.Name(), domain.ErrNotGroupMember)
		}
		l = nl
		b.logs[id] = l
	} else {
		before = l.State()
		if !named(l, from) {
			b.mu.Unlock()
			return fmt.Errorf("log of group %s from %s: %w", id, from.Name(), domain.ErrNotGroupMember)
		}
		if _, err := l.Add(entries...); err != nil {
			slog.Debug("group log entries refused", "group", id.String(), "peer", from.Name().String(), "err", err)
		}
	}
	var rebased []domain.GroupEntry
	for _, c := range l.Rebase(b.me.Name()) {
		e, err := l.Append(b.me, c, b.clock.Now())
		if err != nil {
			slog.Debug("group change not rebased", "group", id.String(), "op", c.Op.String(), "err", err)
			continue
		}
		rebased = append(rebased, e)
	}
	all := l.Entries()
	g := l.State()
	err := b.store.SaveGroupEntries(ctx, id, all)
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("store log of group %s: %w", id, err)
	}
	changed := !known || g.Epoch() != before.Epoch()
	if changed {
		b.events.Publish(ports.GroupChangedEvent{Group: g, Member: g.IsMember(b.me.Name())})
	}
	switch {
	case len(rebased) > 0:
		b.push(ctx, g, before.Members(), all)
	case len(all) > len(entries):
		p, err := encodeGroupLog(id, all)
		if err == nil {
			b.write(ctx, from.Name(), ports.Envelope{Kind: ports.KindGroupLog, Group: p})
		}
	}
	return nil
}

// named reports whether id is named in the log: a member now, or the
// author or subject of an entry (a member removed may still ask).
func named(l *domain.GroupLog, id domain.Identity) bool {
	if m, ok := l.State().Member(id.Name()); ok {
		return m.SameKey(id.PublicKey())
	}
	for _, e := range l.Chain() {
		if e.Author().Name().Equal(id.Name()) && e.Author().SameKey(id.PublicKey()) {
			return true
		}
		for _, m := range e.Members() {
			if m.Name().Equal(id.Name()) && m.SameKey(id.PublicKey()) {
				return true
			}
		}
	}
	return false
}

// answerAsk sends our log of a group to a peer named in it.
func (b *GroupBook) answerAsk(ctx context.Context, from domain.Identity, id domain.GroupID) error {
	b.mu.Lock()
	if err := b.load(ctx); err != nil {
		b.mu.Unlock()
		return err
	}
	l, ok := b.logs[id]
	if !ok || !named(l, from) {
		b.mu.Unlock()
		return fmt.Errorf("log of group %s asked by %s: %w", id, from.Name(), domain.ErrUnknownGroup)
	}
	entries := l.Entries()
	b.mu.Unlock()
	p, err := encodeGroupLog(id, entries)
	if err != nil {
		return err
	}
	b.write(ctx, from.Name(), ports.Envelope{Kind: ports.KindGroupLog, Group: p})
	return nil
}

// ask asks a peer for its log of a group.
func (b *GroupBook) ask(ctx context.Context, to domain.Username, id domain.GroupID) {
	var head domain.Epoch
	b.mu.Lock()
	if l, ok := b.logs[id]; ok {
		head = l.Head()
	}
	b.mu.Unlock()
	b.write(ctx, to, ports.Envelope{Kind: ports.KindGroupLogAsk, Group: groupAskWire{group: id, head: head}.encode()})
}

// markUnread counts one more unread message in a group.
func (b *GroupBook) markUnread(id domain.GroupID) {
	b.mu.Lock()
	b.unread[id]++
	b.mu.Unlock()
}

// markRead clears a group's unread count.
func (b *GroupBook) markRead(id domain.GroupID) {
	b.mu.Lock()
	delete(b.unread, id)
	b.mu.Unlock()
}

// errNotMember is returned for actions in a group we are no longer in.
func errNotMember(g domain.Group) error {
	return fmt.Errorf("group %s: %w", g.Name(), domain.ErrNotGroupMember)
}
