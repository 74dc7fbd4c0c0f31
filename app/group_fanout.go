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

// PairwiseFanout is the ports.GroupTransport that sends one copy of a group
// message to each member over the pairwise MessageLink. It reuses the
// outbox of one-to-one chat, a SendMessage of its own, so each copy is
// stored, written in order, retried with backoff until the member
// acknowledges it, and held while the member's key change waits for the
// user — for that member only.
//
// The SendMessage sees each copy as a chat message with the copy's own ID
// (domain.CopyID) through two translations: copyOutbox, a
// ports.MessageStore over the GroupStore's per-member deliveries, and
// copyLink, a ports.MessageLink that writes the copy as a KindGroupMessage
// envelope. Its state changes become GroupDeliveryEvents (copyEvents).
type PairwiseFanout struct {
	me     domain.LocalIdentity
	store  ports.GroupStore
	outbox *copyOutbox
	send   *SendMessage
}

var _ ports.GroupTransport = (*PairwiseFanout)(nil)

// NewPairwiseFanout builds the fan-out over link and the group store.
func NewPairwiseFanout(me domain.LocalIdentity, link ports.MessageLink, store ports.GroupStore, verify *VerifyContact, clock ports.Clock, events ports.EventSink, backoff Backoff) (*PairwiseFanout, error) {
	switch {
	case link == nil:
		return nil, errNilPort("message link")
	case store == nil:
		return nil, errNilPort("group store")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	ob := &copyOutbox{me: me.Name(), store: store, refs: make(map[domain.MessageID]copyRef), done: make(map[domain.MessageID]copyRef), tallies: make(map[copyKey]*tally)}
	send, err := NewSendMessage(me, copyLink{MessageLink: link, outbox: ob}, ob, verify, clock, copyEvents{outbox: ob, events: events}, backoff)
	if err != nil {
		return nil, err
	}
	ob.acked = send.acknowledged
	return &PairwiseFanout{me: me, store: store, outbox: ob, send: send}, nil
}

// Deliver implements ports.GroupTransport.
func (f *PairwiseFanout) Deliver(ctx context.Context, g domain.Group, m domain.GroupMessage) error {
	var to []domain.Username
	for _, member := range g.Members() {
		if !member.Name().Equal(f.me.Name()) {
			to = append(to, member.Name())
		}
	}
	if err := f.store.SaveGroupOutgoing(ctx, m, to); err != nil {
		return fmt.Errorf("store message to group %s: %w", g.ID(), err)
	}
	f.outbox.started(m, len(to))
	for _, u := range to {
		c := f.outbox.register(ports.GroupCopy{Message: m, Member: u, State: domain.MessageQueued})
		f.send.nudge(u, &c)
	}
	return nil
}

// Flush implements ports.GroupTransport.
func (f *PairwiseFanout) Flush(member domain.Username) { f.send.Flush(member) }

// Run implements ports.GroupTransport.
func (f *PairwiseFanout) Run(ctx context.Context) { f.send.Run(ctx) }

// Acknowledged records a member's acknowledgement of group message id.
func (f *PairwiseFanout) Acknowledged(ctx context.Context, from domain.Username, id domain.MessageID) {
	f.send.delivered(ctx, from, domain.CopyID(id, from), true)
}

// copyKey names one of our group messages.
type copyKey struct {
	group domain.GroupID
	id    domain.MessageID
}

// copyRef is what a copy ID stands for.
type copyRef struct {
	msg    domain.GroupMessage
	member domain.Username
}

// tally counts where one message is, per member, for "delivered to 3 of 4".
type tally struct {
	of        int
	delivered map[string]bool
}

// maxCopyRefs bounds the copies remembered; beyond, the oldest are read
// from the store again when the outbox is.
const maxCopyRefs = 1 << 20

// copyOutbox is the ports.MessageStore the fan-out's SendMessage uses: the
// outbox of each member is the GroupStore's undelivered copies to it.
// Only the methods SendMessage calls are meaningful.
type copyOutbox struct {
	me    domain.Username
	store ports.GroupStore
	// member reports whether name is still a member of group; copies to
	// one who is not (removed, or left, before they were delivered) are
	// marked failed instead of written. nil: every copy is written.
	member func(group domain.GroupID, name domain.Username) bool
	// acked reports whether the copy id was acknowledged by member already
	// (SendMessage's recent acknowledgements): its Delivered mark is on its
	// way, so it is not marked failed even if member is gone since. nil:
	// none known.
	acked func(id domain.MessageID, member domain.Username) bool

	mu      sync.Mutex
	refs    map[domain.MessageID]copyRef
	done    map[domain.MessageID]copyRef // delivered, until their event is published
	tallies map[copyKey]*tally
}

var _ ports.MessageStore = (*copyOutbox)(nil)

var errNotForCopies = errors.New("not used by the group fan-out")

// register remembers a copy and returns it as the chat message SendMessage handles.
func (o *copyOutbox) register(c ports.GroupCopy) domain.Message {
	id := domain.CopyID(c.Message.ID(), c.Member)
	o.mu.Lock()
	if len(o.refs) >= maxCopyRefs {
		clear(o.refs)
		clear(o.done)
	}
	o.refs[id] = copyRef{msg: c.Message, member: c.Member}
	o.mu.Unlock()
	return domain.RestoreMessage(id, o.me, c.Member, c.Message.SentAt(), c.Message.Body(), domain.Outgoing, c.State)
}

// lastRef is ref for the event of a state change: it also finds (and
// forgets) a copy just delivered.
func (o *copyOutbox) lastRef(id domain.MessageID) (copyRef, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r, ok := o.done[id]; ok {
		delete(o.done, id)
		return r, true
	}
	r, ok := o.refs[id]
	return r, ok
}

func (o *copyOutbox) ref(id domain.MessageID) (copyRef, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.refs[id]
	return r, ok
}

// started begins the tally of a new message sent to n members.
func (o *copyOutbox) started(m domain.GroupMessage, n int) {
	o.mu.Lock()
	o.tallies[copyKey{m.Group(), m.ID()}] = &tally{of: n, delivered: map[string]bool{}}
	o.mu.Unlock()
}

// count records member's state for a message and returns how many have it
// of how many it was sent to, reading the store for a message sent before
// a restart.
func (o *copyOutbox) count(ctx context.Context, r copyRef, st domain.MessageState) (int, int) {
	k := copyKey{r.msg.Group(), r.msg.ID()}
	o.mu.Lock()
	t, ok := o.tallies[k]
	o.mu.Unlock()
	if !ok {
		ds, err := o.store.GroupDeliveries(ctx, k.group, k.id)
		if err != nil {
			return 0, 0
		}
		t = &tally{of: len(ds), delivered: map[string]bool{}}
		for _, d := range ds {
			if d.State == domain.MessageDelivered || d.State == domain.MessageRead {
				t.delivered[d.Member.Key()] = true
			}
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if st == domain.MessageDelivered || st == domain.MessageRead {
		t.delivered[r.member.Key()] = true
	}
	n := len(t.delivered)
	if n >= t.of {
		delete(o.tallies, k)
	} else {
		o.tallies[k] = t
	}
	return n, t.of
}

// Outbox lists the undelivered copies to peer.
func (o *copyOutbox) Outbox(ctx context.Context, peer domain.Username) ([]domain.Message, error) {
	copies, err := o.store.GroupOutbox(ctx, peer)
	if err != nil {
		return nil, err
	}
	out := make([]domain.Message, 0, len(copies))
	for _, c := range copies {
		if o.withdrawnCopy(c.Message, c.Member) {
			if err := o.drop(ctx, c.Message, c.Member); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, o.register(c))
	}
	return out, nil
}

// withdrawn implements withdrawer: a copy handed to SendMessage, or read
// from the outbox, before its member was removed is marked failed rather
// than written.
func (o *copyOutbox) withdrawn(ctx context.Context, m domain.Message) bool {
	r, ok := o.ref(m.ID())
	if !ok || !o.withdrawnCopy(r.msg, r.member) {
		return false
	}
	if err := o.drop(ctx, r.msg, r.member); err != nil {
		slog.Error("group copy not written, not marked failed", "group", r.msg.Group().String(), "id", r.msg.ID().String(), "err", err)
	}
	return true
}

// withdrawnCopy reports whether the copy of m to member is to be marked
// failed: member is no longer in the group, and did not acknowledge the
// copy before (an outbox read after the removal may still hold a copy
// whose Delivered mark is on its way).
func (o *copyOutbox) withdrawnCopy(m domain.GroupMessage, member domain.Username) bool {
	if o.member == nil || o.member(m.Group(), member) {
		return false
	}
	return o.acked == nil || !o.acked(domain.CopyID(m.ID(), member), member)
}

// drop marks the copy of m to one no longer a member failed.
func (o *copyOutbox) drop(ctx context.Context, m domain.GroupMessage, member domain.Username) error {
	if _, err := o.store.SetGroupDelivery(ctx, m.Group(), m.ID(), member, domain.MessageFailed); err != nil {
		return fmt.Errorf("drop copy of %s to %s, no longer a member: %w", m.ID(), member, err)
	}
	return nil
}

// OutboxPeers lists the members with undelivered copies.
func (o *copyOutbox) OutboxPeers(ctx context.Context) ([]domain.Username, error) {
	return o.store.GroupOutboxMembers(ctx)
}

// SetState moves the delivery of a copy.
func (o *copyOutbox) SetState(ctx context.Context, id domain.MessageID, s domain.MessageState) (domain.Message, error) {
	r, ok := o.ref(id)
	if !ok {
		return domain.Message{}, fmt.Errorf("group copy %s: %w", id, domain.ErrNotFound)
	}
	m, err := o.store.SetGroupDelivery(ctx, r.msg.Group(), r.msg.ID(), r.member, s)
	if err != nil {
		return domain.Message{}, err
	}
	if s == domain.MessageDelivered || s == domain.MessageRead {
		// The copy is done with; its event is translated from what this returns.
		o.mu.Lock()
		delete(o.refs, id)
		o.done[id] = r
		o.mu.Unlock()
	}
	return domain.RestoreMessage(id, o.me, r.member, m.SentAt(), "", domain.Outgoing, s), nil
}

// MarkStates moves the deliveries of copies, concurrently (the store
// commits them together), durably: group deliveries have no lazy marks.
func (o *copyOutbox) MarkStates(ctx context.Context, marks []ports.StateMark) ([]ports.StateMark, error) {
	moved := make([]bool, len(marks))
	errs := make([]error, len(marks))
	var wg sync.WaitGroup
	for i, m := range marks {
		wg.Go(func() {
			_, err := o.SetState(ctx, m.ID, m.State)
			switch {
			case err == nil:
				moved[i] = true
			case errors.Is(err, domain.ErrInvalidTransition), errors.Is(err, domain.ErrNotFound):
			default:
				errs[i] = err
			}
		})
	}
	wg.Wait()
	var out []ports.StateMark
	for i, m := range marks {
		if moved[i] {
			out = append(out, m)
		}
	}
	return out, errors.Join(errs...)
}

func (o *copyOutbox) SaveOutgoingStaged(context.Context, domain.Message, func()) error {
	return errNotForCopies
}
func (o *copyOutbox) SaveOutgoing(context.Context, domain.Message) error { return errNotForCopies }
func (o *copyOutbox) SaveIncoming(context.Context, domain.Message) (bool, error) {
	return false, errNotForCopies
}
func (o *copyOutbox) History(context.Context, domain.Username, time.Time, int) ([]domain.Message, error) {
	return nil, errNotForCopies
}
func (o *copyOutbox) Search(context.Context, string, int) ([]domain.Message, error) {
	return nil, errNotForCopies
}

// copyLink writes the fan-out's chat envelopes as group messages.
type copyLink struct {
	ports.MessageLink
	outbox *copyOutbox
}

// Send writes the copy env names as a KindGroupMessage envelope; other
// kinds pass through.
func (l copyLink) Send(ctx context.Context, to domain.Peer, env ports.Envelope) error {
	if env.Kind != ports.KindChat {
		return l.MessageLink.Send(ctx, to, env)
	}
	r, ok := l.outbox.ref(env.MessageID)
	if !ok {
		return fmt.Errorf("group copy %s to %s: %w", env.MessageID, to.Name(), domain.ErrNotFound)
	}
	w := groupMessageWire{group: r.msg.Group(), epoch: r.msg.Epoch(), id: r.msg.ID(), sentAt: r.msg.SentAt(), body: r.msg.Body()}
	return l.MessageLink.Send(ctx, to, ports.Envelope{Kind: ports.KindGroupMessage, Group: w.encode()})
}

// copyEvents turns the fan-out's message state events into group delivery
// events. The rest (reachability: the one-to-one outbox reports it) is dropped.
type copyEvents struct {
	outbox *copyOutbox
	events ports.EventSink
}

func (e copyEvents) Publish(ev ports.Event) {
	st, ok := ev.(ports.MessageStateEvent)
	if !ok {
		return
	}
	r, ok := e.outbox.lastRef(st.ID)
	if !ok {
		return
	}
	n, of := e.outbox.count(context.Background(), r, st.State)
	e.events.Publish(ports.GroupDeliveryEvent{Group: r.msg.Group(), ID: r.msg.ID(), Member: r.member, State: st.State, Delivered: n, Of: of})
}
