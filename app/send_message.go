package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxAwaitingAcks bounds the IDs remembered as sent and not yet acknowledged
// (per client), and recentAcked the delivered IDs kept for read receipts
// and to recognise a repeated acknowledgement (and a message acknowledged
// whose "delivered" is not yet in the store, which a full round of the
// outbox still reads) without a store read.
const (
	maxAwaitingAcks = 1 << 20
	recentAcked     = 1 << 15
)

// maxStateBatch bounds the state changes in one batch of the applier (one
// MessageStore.MarkStates) and maxStateBatches the batches applied at once;
// stateDrainTimeout bounds applying what is left when Run stops.
const (
	maxStateBatch     = 1024
	maxStateBatches   = 4
	stateDrainTimeout = 5 * time.Second
)

// peerCacheTTL is how long a peer resolved by VerifyContact.PeerForSend
// (a directory lookup and a pin check that waits for the trust store) is
// reused to write messages and acknowledgements; maxCachedPeers bounds
// the cache. A pending key change is checked on every use all the same,
// and a failed write forgets the peer.
const (
	peerCacheTTL   = 250 * time.Millisecond
	maxCachedPeers = 4096
)

// SendMessage is "send this text to that person": the message is stored in
// the outbox before it is reported, then written to the peer's link and
// written again, with backoff, until the peer acknowledges it. When the peer
// comes online its outbox is flushed in order.
type SendMessage struct {
	me      domain.LocalIdentity
	link    ports.MessageLink
	store   ports.MessageStore
	verify  *VerifyContact
	clock   ports.Clock
	events  ports.EventSink
	backoff Backoff
	reach   *reachability
	mail    *mailDelivery // nil: no offline delivery

	stampMu sync.Mutex
	last    time.Time // SentAt of our newest message: stamps strictly increase

	mu       sync.Mutex
	runCtx   context.Context // set by Run; nil before and after
	wg       sync.WaitGroup
	queues   map[string]*outboxQueue // by peer name key
	awaiting map[domain.MessageID]awaitingAck
	acked    []ackedID // ring of recently acknowledged IDs, for read receipts
	ackedPos int
	ackedAt  map[domain.MessageID]int // the ring's IDs, by position

	// State changes waiting for the applier (see applyStates and
	// stateQueue). Bounded by the messages we know: awaiting plus the
	// acked ring.
	applying    bool // the applier runs: setState queues instead of waiting
	states      stateQueue
	changesWake chan struct{}
	applyingIDs map[domain.MessageID]struct{} // in a batch being applied
	// shown: messages whose Delivered event went out at the peer's
	// acknowledgement, before their mark is committed (showDelivered);
	// until it is, History reports them delivered all the same.
	shown map[domain.MessageID]struct{}

	// Messages started and not yet released, in start order, and their
	// IDs (send_intake.go).
	intake    []*PendingSend
	intakeIDs map[domain.MessageID]struct{}

	peerMu     sync.Mutex
	peers      map[string]resolvedPeer // by name key
	recipients map[string]time.Time    // by name key: when Recipient last passed
}

type resolvedPeer struct {
	peer domain.Peer
	at   time.Time
}

// stateChange is a state one of our messages to peer moves to.
type stateChange struct {
	id    domain.MessageID
	peer  domain.Username
	state domain.MessageState
	due   time.Time // not applied before
	gone  bool      // in stateQueue.waiting: moved to ready, skipped
}

type awaitingAck struct {
	peer   domain.Username
	at     time.Time // when it was last written to the link
	marked bool      // its "sent" was queued (a rewrite may read it queued still)
}

type ackedID struct {
	id   domain.MessageID
	peer domain.Username
}

// maxFresh bounds the new messages handed to a flusher without a store
// read; beyond, the flusher reads the outbox instead.
const maxFresh = 1 << 16

// outboxQueue is the flusher of one peer's outbox.
type outboxQueue struct {
	name    domain.Username
	running bool
	nudge   chan struct{}
	acks    int // acknowledgements since the flusher last looked

	// A round of the flusher writes either the whole outbox, read from the
	// store (full: at the start, when the peer came online, after a failed
	// write, and at least every retry interval so unacknowledged messages
	// are written again), or only the fresh messages Handle stored since
	// the last round, without reading the store.
	full     bool
	lastFull time.Time
	fresh    []domain.Message

	// pausedUntil: the peer refused a message (KindRefused) and asked
	// us to wait until then (contacts_refused.go).
	pausedUntil time.Time
}

// SendMessageInput is what the user typed and to whom.
type SendMessageInput struct {
	To   domain.Username
	Text string
}

// NewSendMessage builds the use-case.
func NewSendMessage(me domain.LocalIdentity, link ports.MessageLink, store ports.MessageStore, verify *VerifyContact, clock ports.Clock, events ports.EventSink, backoff Backoff) (*SendMessage, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case link == nil:
		return nil, errNilPort("message link")
	case store == nil:
		return nil, errNilPort("message store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case clock == nil:
		return nil, errNilPort("clock")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &SendMessage{me: me, link: link, store: store, verify: verify, clock: clock, events: events,
		backoff: backoff.orDefault(), reach: newReachability(link, events), queues: make(map[string]*outboxQueue),
		awaiting: make(map[domain.MessageID]awaitingAck), acked: make([]ackedID, recentAcked),
		ackedAt: make(map[domain.MessageID]int, recentAcked),
		states:  newStateQueue(), changesWake: make(chan struct{}, 1),
		applyingIDs: make(map[domain.MessageID]struct{}), shown: make(map[domain.MessageID]struct{}),
		peers: make(map[string]resolvedPeer), recipients: make(map[string]time.Time),
		intakeIDs: make(map[domain.MessageID]struct{})}, nil
}

// stamp returns a send time later than every one before it.
func (s *SendMessage) stamp() time.Time {
	s.stampMu.Lock()
	defer s.stampMu.Unlock()
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	if !now.After(s.last) {
		now = s.last.Add(time.Microsecond)
	}
	s.last = now
	return now
}

// Handle stores the message in the outbox, reports it and starts delivering
// it (after every message started before it: see Start). *domain.KeyChangedError: the peer's key changed and sending is blocked;
// domain.ErrUnknownPeer: nobody has that name.
func (s *SendMessage) Handle(ctx context.Context, in SendMessageInput) (domain.Message, error) {
	p, err := s.begin(ctx, in)
	if err != nil {
		return domain.Message{}, err
	}
	s.store1(ctx, p)
	return p.Wait()
}

// Run makes Flush deliver: it starts a flusher for every peer with messages
// in the outbox, and stops every flusher when ctx is done, returning after
// they all stopped.
//
// While it runs, state changes (sent, delivered, read) are applied by one
// applier goroutine in batches, one lazy MarkStates each, so that neither
// a flusher nor the link delivering acknowledgements waits for a write per
// message, and a message costs one durable write (its SaveOutgoing); what
// is still queued when ctx is done is applied before Run returns.
func (s *SendMessage) Run(ctx context.Context) {
	applied := make(chan struct{})
	s.mu.Lock()
	s.runCtx = ctx
	s.applying = true
	s.mu.Unlock()
	go func() { defer close(applied); s.applyStates(ctx) }()
	peers, err := s.store.OutboxPeers(ctx)
	if err != nil && ctx.Err() == nil {
		slog.Error("list outbox", "err", err)
	}
	for _, p := range peers {
		s.Flush(p)
	}
	<-ctx.Done()
	s.mu.Lock()
	s.runCtx = nil
	s.mu.Unlock()
	s.wg.Wait()
	<-applied // after the flushers: they queue state changes
}

// Flush makes the flusher of peer look at its outbox now (a new message,
// the peer came online, a key change was accepted). Before Run it does
// nothing: Run flushes every outbox when it starts.
func (s *SendMessage) Flush(peer domain.Username) { s.nudge(peer, nil) }

// nudge wakes the flusher of peer, starting it if needed: to write the
// fresh message m (stored in the outbox already), or, with m nil, to read
// and write the whole outbox.
func (s *SendMessage) nudge(peer domain.Username, m *domain.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nudgeLocked(peer, m)
}

// nudgeLocked is nudge with s.mu held. A fresh message is kept in q.fresh
// even when a full round is asked for: the round needs to know what was
// released after it began (cutUnreleased).
func (s *SendMessage) nudgeLocked(peer domain.Username, m *domain.Message) {
	if s.runCtx == nil {
		return
	}
	q, ok := s.queues[peer.Key()]
	if !ok {
		q = &outboxQueue{name: peer, nudge: make(chan struct{}, 1), full: true}
		s.queues[peer.Key()] = q
	}
	switch {
	case m == nil:
		q.full = true
	case len(q.fresh) >= maxFresh:
		q.full, q.fresh = true, nil
	default:
		q.fresh = append(q.fresh, *m)
	}
	select {
	case q.nudge <- struct{}{}:
	default:
	}
	if !q.running {
		q.running = true
		s.wg.Add(1)
		go s.flush(s.runCtx, q)
	}
}

// flush delivers one peer's outbox until it is empty or ctx is done.
func (s *SendMessage) flush(ctx context.Context, q *outboxQueue) {
	defer s.wg.Done()
	retry := s.backoff.Min
	for {
		select {
		case <-q.nudge:
			retry = s.backoff.Min
		default:
		}
		if ctx.Err() != nil {
			s.stopQueue(q)
			return
		}
		// The fresh messages are taken before the outbox is read, so a
		// full round's read holds every one of them.
		pending, full := s.takeFresh(q, retry)
		var err error
		if full {
			pending, err = s.store.Outbox(ctx, q.name)
			if err == nil {
				pending = s.cutUnreleased(q, pending)
			}
			if err != nil {
				slog.Error("read outbox", "peer", q.name.String(), "err", err)
				s.needFull(q)
			} else if len(pending) == 0 {
				if s.stopQueueIfIdle(q) {
					return
				}
				continue
			}
		}
		blocked := false
		pause := s.pausedFor(q)
		if err == nil && pause == 0 && (full || len(pending) > 0) {
			var ok bool
			blocked, ok = s.writeOutbox(ctx, q, pending, retry)
			if blocked || !ok {
				s.needFull(q) // what was not written is read again
			}
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !blocked { // a blocked peer waits for the user, not for a timer
			wait := jitter(retry)
			if pause > 0 {
				wait = pause
			}
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-q.nudge:
			retry = s.backoff.Min
		case <-timer:
			s.mu.Lock()
			acks := q.acks
			q.acks = 0
			q.full, q.fresh = true, nil
			s.mu.Unlock()
			if acks > 0 {
				retry = s.backoff.Min
			} else {
				retry = s.backoff.next(retry)
			}
		}
		if t != nil {
			t.Stop()
		}
	}
}

// peerForSend is VerifyContact.PeerForSend, reusing a peer resolved less
// than peerCacheTTL ago unless a key change is pending.
func (s *SendMessage) peerForSend(ctx context.Context, name domain.Username) (domain.Peer, error) {
	if err := s.verify.Blocked(ctx, name); err != nil {
		s.forgetPeer(name)
		return domain.Peer{}, err
	}
	s.peerMu.Lock()
	r, ok := s.peers[name.Key()]
	s.peerMu.Unlock()
	if ok && time.Since(r.at) < peerCacheTTL {
		return r.peer, nil
	}
	p, err := s.verify.PeerForSend(ctx, name)
	if err != nil {
		s.forgetPeer(name)
		return domain.Peer{}, err
	}
	s.peerMu.Lock()
	if len(s.peers) >= maxCachedPeers {
		clear(s.peers)
	}
	s.peers[name.Key()] = resolvedPeer{peer: p, at: time.Now()}
	s.peerMu.Unlock()
	return p, nil
}

// forgetPeer drops name from the peer cache.
func (s *SendMessage) forgetPeer(name domain.Username) {
	s.peerMu.Lock()
	delete(s.peers, name.Key())
	s.peerMu.Unlock()
}

// markOnce reports whether id, written and awaiting its acknowledgement,
// still needs its "sent" queued, and records that it is queued.
func (s *SendMessage) markOnce(id domain.MessageID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.awaiting[id]
	if !ok || a.marked {
		return false // acknowledged meanwhile, or marked already
	}
	a.marked = true
	s.awaiting[id] = a
	return true
}

// takeFresh starts a round: it reports whether the round is full (and
// records when), else it takes the fresh messages.
func (s *SendMessage) takeFresh(q *outboxQueue, retry time.Duration) ([]domain.Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if q.full || now.Sub(q.lastFull) >= retry {
		q.full, q.fresh, q.lastFull = false, nil, now
		return nil, true
	}
	fresh := q.fresh
	q.fresh = nil
	return fresh, false
}

// needFull makes the next round of q read the whole outbox.
func (s *SendMessage) needFull(q *outboxQueue) {
	s.mu.Lock()
	q.full, q.fresh = true, nil
	s.mu.Unlock()
}

// withdrawer is a MessageStore whose queued messages may be withdrawn
// before they are written: a group copy to one removed from the group
// after it was queued. writeOutbox asks just before each write.
type withdrawer interface {
	withdrawn(ctx context.Context, m domain.Message) bool
}

// writeOutbox writes every message of pending not written in the last
// retry to the peer, oldest first; it stops at the first failure. It
// reports whether the peer is blocked by a key change, and whether every
// message was written (or was written within the last retry).
func (s *SendMessage) writeOutbox(ctx context.Context, q *outboxQueue, pending []domain.Message, retry time.Duration) (blocked, ok bool) {
	peer, err := s.peerForSend(ctx, q.name)
	var kc *domain.KeyChangedError
	switch {
	case errors.As(err, &kc):
		return true, false
	case err != nil:
		slog.Debug("outbox waits", "peer", q.name.String(), "err", err)
		s.offline(ctx, q, pending, err, false)
		return false, false
	}
	wd, _ := s.store.(withdrawer)
	for i, m := range pending {
		if wd != nil && wd.withdrawn(ctx, m) {
			s.mu.Lock()
			delete(s.awaiting, m.ID()) // written before, perhaps: no acknowledgement is waited for now
			s.mu.Unlock()
			continue
		}
		now := time.Now()
		s.mu.Lock()
		a, written := s.awaiting[m.ID()]
		if written && now.Sub(a.at) < retry {
			s.mu.Unlock()
			continue
		}
		if !written && len(s.awaiting) >= maxAwaitingAcks {
			s.mu.Unlock()
			return false, false
		}
		if !written && s.ackedLocked(m.ID(), q.name) {
			// Acknowledged already; its "delivered" is still on its way
			// to the store, which is why the outbox read it.
			s.mu.Unlock()
			continue
		}
		s.awaiting[m.ID()] = awaitingAck{peer: q.name, at: now, marked: a.marked}
		s.mu.Unlock()
		env := ports.Envelope{Kind: ports.KindChat, MessageID: m.ID(), SentAt: m.SentAt(), Body: m.Body()}
		if err := sendEnvelope(ctx, s.link, peer, env); err != nil {
			s.forgetPeer(q.name)
			if errors.As(err, &kc) {
				s.verify.recordKeyChange(ctx, q.name)
				return true, false
			}
			slog.Debug("send message", "peer", q.name.String(), "id", m.ID().String(), "err", err)
			if ctx.Err() == nil {
				s.reach.failed(peer, err)
			}
			s.offline(ctx, q, pending[i:], err, true)
			return false, false
		}
		traceStage(StageWritten, m.ID())
		s.reach.reached(peer)
		s.reachedPeer(q.name)
		if m.State() == domain.MessageQueued && s.markOnce(m.ID()) {
			s.queueState(ctx, stateChange{id: m.ID(), peer: q.name, state: domain.MessageSent})
		}
	}
	return false, true
}

// setState moves a message to st and publishes the change; nothing when
// the domain refuses the move (an acknowledgement overtook the local
// "sent", a repeat).
func (s *SendMessage) setState(ctx context.Context, id domain.MessageID, peer domain.Username, st domain.MessageState) {
	if m, ok := s.storeState(ctx, stateChange{id: id, peer: peer, state: st}); ok {
		s.events.Publish(ports.MessageStateEvent{ID: id, Peer: m.To(), State: m.State()})
	}
}

func (s *SendMessage) storeState(ctx context.Context, c stateChange) (domain.Message, bool) {
	m, err := s.store.SetState(ctx, c.id, c.state)
	if errors.Is(err, domain.ErrInvalidTransition) {
		return domain.Message{}, false
	}
	if err != nil {
		slog.Error("set message state", "peer", c.peer.String(), "id", c.id.String(), "state", c.state.String(), "err", err)
		return domain.Message{}, false
	}
	return m, true
}

// stateRank orders the states a message moves through once written; a
// queued change is replaced by a later one of higher rank (the domain
// allows queued → delivered and sent → read directly).
func stateRank(st domain.MessageState) int {
	switch st {
	case domain.MessageSent:
		return 1
	case domain.MessageStored: // parked in the peer's mailbox (a lost mark re-deposits; the peer deduplicates)
		return 2
	case domain.MessageDelivered:
		return 3
	case domain.MessageRead:
		return 4
	}
	return 0
}

// queueState hands c to the applier, or applies it now when the applier
// does not run (before and after Run). A "sent" change waits a quarter of
// the minimum retry interval before it is applied: an acknowledgement
// arriving meanwhile replaces it, sparing a write per message.
func (s *SendMessage) queueState(ctx context.Context, c stateChange) {
	now := time.Now()
	c.due = now
	if c.state == domain.MessageSent {
		c.due = now.Add(s.backoff.Min / 4)
	}
	s.mu.Lock()
	if !s.applying {
		s.mu.Unlock()
		s.setState(ctx, c.id, c.peer, c.state)
		return
	}
	s.states.put(c)
	if c.state == domain.MessageDelivered {
		s.showDeliveredLocked(c.id)
	}
	s.mu.Unlock()
	s.wakeApplier()
}

// showDeliveredLocked publishes the Delivered event of id, whose change
// to delivered is queued, without waiting for its mark to be committed:
// the peer's acknowledgement is what "delivered" means (the message is
// durable there), and the mark is lazy anyway (ports.MessageMarks: lost,
// it costs a repeated write the peer deduplicates). It does so only when
// that keeps a message's events in order: the message is released (its
// MessageEvent went out: store1 calls this again when it is) and no
// earlier change of it is being applied (the applier publishes the event
// after the mark then). Until the mark is committed, History overlays
// the state (overlayShown), so a script reading its history on the
// event sees it delivered. s.mu held.
func (s *SendMessage) showDeliveredLocked(id domain.MessageID) {
	c, ok := s.states.get(id)
	if !ok || s.busyLocked(id) {
		return
	}
	if c.state != domain.MessageDelivered {
		return // a read receipt overtook it: the applier publishes that
	}
	if _, done := s.shown[id]; done {
		return
	}
	s.shown[id] = struct{}{}
	s.events.Publish(ports.MessageStateEvent{ID: id, Peer: c.peer, State: domain.MessageDelivered})
	traceStage(StageDelivered, id)
}

// overlayShown reports as delivered the messages of ms whose Delivered
// event was published and whose mark is not yet committed.
func (s *SendMessage) overlayShown(ms []domain.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.shown) == 0 {
		return
	}
	for i := range ms {
		if _, ok := s.shown[ms[i].ID()]; ok && stateRank(ms[i].State()) < stateRank(domain.MessageDelivered) {
			_ = ms[i].MoveTo(domain.MessageDelivered) // allowed from queued, sent and stored
		}
	}
}

func (s *SendMessage) wakeApplier() {
	select {
	case s.changesWake <- struct{}{}:
	default:
	}
}

// takeStates removes and returns up to maxStateBatch queued changes that
// are due and whose message has no change being applied, the oldest first,
// and marks their messages in flight. It also returns when the next change
// not taken is due (zero: none waits for time).
func (s *SendMessage) takeStates(now time.Time, all bool) ([]stateChange, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch, next := s.states.take(now, all, maxStateBatch, s.busyLocked)
	for _, c := range batch {
		s.applyingIDs[c.id] = struct{}{}
	}
	return batch, next
}

// busyLocked reports whether id's message has a change being applied, or
// is not yet released (its MessageEvent comes first; store1 wakes the
// applier then).
func (s *SendMessage) busyLocked(id domain.MessageID) bool {
	if _, ok := s.applyingIDs[id]; ok {
		return true
	}
	_, unreleased := s.intakeIDs[id]
	return unreleased
}

// applyStates applies queued state changes until ctx is done: a batch is
// one MarkStates, up to maxStateBatches batches at once, and a batch's events are published in
// its order once it is applied. A message is in at most one batch at a
// time, so its events are published in the order its state moved. When ctx
// is done it stops queueing and applies what is left, due or not, within
// stateDrainTimeout.
func (s *SendMessage) applyStates(ctx context.Context) {
	var wg sync.WaitGroup
	running := make(chan struct{}, maxStateBatches)
	defer func() {
		wg.Wait()
		s.mu.Lock()
		s.applying = false
		s.mu.Unlock()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateDrainTimeout)
		defer cancel()
		for dctx.Err() == nil {
			batch, _ := s.takeStates(time.Now(), true)
			if len(batch) == 0 {
				return
			}
			s.applyBatch(dctx, batch)
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var next time.Time
		for {
			select {
			case running <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var batch []stateChange
			batch, next = s.takeStates(time.Now(), false)
			if len(batch) == 0 {
				<-running
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.applyBatch(ctx, batch)
				<-running
				s.wakeApplier() // its messages may have changes waiting
			}()
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.changesWake:
		case <-timer.C:
		}
	}
}

// applyBatch records batch with one MarkStates (lazy: committed, durable
// with the store's next fsync — a lost mark only makes the message be
// written again, which the peer deduplicates), publishes the changes made
// in order (but the Delivered events published at the acknowledgement:
// showDeliveredLocked), and marks its messages no longer in flight.
func (s *SendMessage) applyBatch(ctx context.Context, batch []stateChange) {
	marks := make([]ports.StateMark, len(batch))
	for i, c := range batch {
		marks[i] = ports.StateMark{ID: c.id, State: c.state}
		if c.state == domain.MessageDelivered {
			traceStage(StageMarking, c.id)
		}
	}
	moved, err := s.store.MarkStates(ctx, marks)
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping: the marks are lost, which only means writing the
		// messages again after the restart (see ports.MessageMarks).
		slog.Debug("message states not recorded: stopping", "messages", len(batch), "err", err)
	case err != nil:
		slog.Error("set message states", "messages", len(batch), "err", err)
	}
	// The Delivered events published at the acknowledgement are not
	// published again; their overlay ends: the store has the mark (or
	// lost it, and the message is written again).
	var early []bool
	s.mu.Lock()
	if len(s.shown) > 0 {
		for i, c := range batch {
			if _, ok := s.shown[c.id]; ok {
				delete(s.shown, c.id)
				if c.state == domain.MessageDelivered {
					if early == nil {
						early = make([]bool, len(batch))
					}
					early[i] = true
				}
			}
		}
	}
	s.mu.Unlock()
	for i, j := 0, 0; i < len(batch) && j < len(moved); i++ {
		if c := batch[i]; c.id == moved[j].ID {
			j++
			if early != nil && early[i] {
				continue
			}
			s.events.Publish(ports.MessageStateEvent{ID: c.id, Peer: c.peer, State: c.state})
			if c.state == domain.MessageDelivered {
				traceStage(StageDelivered, c.id)
			}
		}
	}
	s.mu.Lock()
	for _, c := range batch {
		delete(s.applyingIDs, c.id)
	}
	s.mu.Unlock()
}

// stopQueue marks q's flusher stopped.
func (s *SendMessage) stopQueue(q *outboxQueue) {
	s.mu.Lock()
	q.running = false
	s.mu.Unlock()
}

// stopQueueIfIdle stops q's flusher unless a nudge came in meanwhile.
func (s *SendMessage) stopQueueIfIdle(q *outboxQueue) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-q.nudge:
		// a message arrived while we looked: go round again
		q.nudge <- struct{}{}
		return false
	default:
	}
	q.running = false
	return true
}

// Delivered records the peer's acknowledgement of one of our messages. It
// is ignored unless we wrote that message to that peer. The message is
// delivered in the store when Delivered returns.
func (s *SendMessage) Delivered(ctx context.Context, from domain.Username, id domain.MessageID) {
	s.delivered(ctx, from, id, false)
}

// delivered is Delivered; with queue, the state change goes to the applier
// (while Run runs) instead of being waited for.
func (s *SendMessage) delivered(ctx context.Context, from domain.Username, id domain.MessageID, queue bool) {
	s.mu.Lock()
	a, ok := s.awaiting[id]
	repeat := false
	if ok && a.peer.Equal(from) {
		delete(s.awaiting, id)
		s.recordAckedLocked(id, from)
		if q, ok := s.queues[from.Key()]; ok {
			q.acks++
		}
	} else {
		// A repeat (the peer answers every copy it gets): its state
		// change is queued or stored already.
		repeat = s.ackedLocked(id, from)
	}
	s.mu.Unlock()
	if repeat {
		return
	}
	if !ok || !a.peer.Equal(from) {
		if s.mail != nil {
			// Written before a restart, or parked in the peer's mailbox:
			// it counts if it is ours to from in the outbox.
			if err := s.mailAck(ctx, from, ports.KindDelivered, id); err != nil {
				slog.Debug("acknowledgement not applied", "peer", from.String(), "id", id.String(), "err", err)
			}
			return
		}
		slog.Debug("acknowledgement for no message we sent", "peer", from.String(), "id", id.String())
		return
	}
	traceStage(StageAcked, id)
	if queue {
		s.queueState(ctx, stateChange{id: id, peer: from, state: domain.MessageDelivered})
		return
	}
	s.setState(ctx, id, from, domain.MessageDelivered)
}

// Read records the peer's read receipt for a message it acknowledged.
func (s *SendMessage) Read(ctx context.Context, from domain.Username, id domain.MessageID) {
	s.read(ctx, from, id, false)
}

// read is Read; with queue, the state change goes to the applier.
func (s *SendMessage) read(ctx context.Context, from domain.Username, id domain.MessageID, queue bool) {
	s.mu.Lock()
	known := s.ackedLocked(id, from)
	if a, ok := s.awaiting[id]; ok && a.peer.Equal(from) {
		known = true
	}
	s.mu.Unlock()
	if !known {
		return
	}
	if queue {
		s.queueState(ctx, stateChange{id: id, peer: from, state: domain.MessageRead})
		return
	}
	s.setState(ctx, id, from, domain.MessageRead)
}

// acknowledged reports whether peer acknowledged id recently (its state
// change may still be on its way to the store).
func (s *SendMessage) acknowledged(id domain.MessageID, peer domain.Username) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackedLocked(id, peer)
}

// recordAckedLocked puts id, acknowledged by peer, in the ring of recent
// acknowledgements (s.mu held).
func (s *SendMessage) recordAckedLocked(id domain.MessageID, peer domain.Username) {
	if old := s.acked[s.ackedPos]; !old.peer.IsZero() && s.ackedAt[old.id] == s.ackedPos {
		delete(s.ackedAt, old.id)
	}
	s.acked[s.ackedPos] = ackedID{id: id, peer: peer}
	s.ackedAt[id] = s.ackedPos
	s.ackedPos = (s.ackedPos + 1) % len(s.acked)
}

// ackedLocked reports whether peer acknowledged id recently (s.mu held).
func (s *SendMessage) ackedLocked(id domain.MessageID, peer domain.Username) bool {
	i, ok := s.ackedAt[id]
	return ok && s.acked[i].peer.Equal(peer)
}
