package jsonrpc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxAutoAccepting bounds the offers remembered as being auto-accepted.
const maxAutoAccepting = 4096

// pumpEvents turns the client's events into notifications until the event
// channel closes (ctx done). With AutoAccept it also accepts new offers,
// each in its own goroutine counted in bg.
func (s *Server) pumpEvents(ctx context.Context, events <-chan ports.Event, bg *sync.WaitGroup) {
	for ev := range events {
		switch e := ev.(type) {
		case ports.MessageEvent:
			s.notify("message", viewMessage(e.Message))
		case ports.MessageStateEvent:
			s.notify("messageState", messageStateView{ID: e.ID.String(), Peer: e.Peer.String(), State: e.State.String(), Reason: e.Reason})
			if e.State == domain.MessageDelivered {
				s.notify("delivered", deliveredView{ID: e.ID.String(), Peer: e.Peer.String()})
			}
		case ports.MailExpiredEvent:
			s.notify("mailExpired", mailExpiredView{From: e.From.String(), ID: e.ID.String(), SentAt: e.SentAt, State: domain.MessageFailed.String(), Reason: e.Reason})
		case ports.PresenceEvent:
			s.notify("presence", viewPresence(e.Peer))
		case ports.DirectoryStatusEvent:
			s.notify("registry", registryView{Connected: e.Connected, Error: e.Err, CertChanged: e.CertChanged})
		case ports.RegisteredEvent:
			me := s.client.Whoami()
			s.notify("ready", readyView{Name: e.Name.String(), Fingerprint: me.Fingerprint().String()})
		case ports.TransferEvent:
			t := e.Transfer
			s.notify("transfer", viewTransfer(t, t.State() == domain.TransferOffered))
			if s.opts.AutoAccept {
				s.maybeAutoAccept(ctx, t, bg)
			}
		case ports.KeyChangedEvent:
			s.notify("keyChanged", keyChangedView{Name: e.Name.String(), Old: e.Old.String(), New: e.New.String()})
		case ports.TypingEvent:
			s.notify("typing", typingView{From: e.From.String()})
		case ports.ReachabilityEvent:
			s.notify("reachability", viewReachability(e))
		case ports.RequestEvent:
			s.notify("request", viewRequest(e.Request))
		case ports.ContactEvent:
			s.notify("contact", viewContactEvent(e))
		case ports.RefusedEvent:
			s.notify("refused", refusedView{Peer: e.Peer.String(), Reason: e.Reason.String(), RetryAfterMs: e.RetryAfter.Milliseconds()})
		default:
			if !s.notifyGroup(ev) {
				s.logger.Debug("event without notification", "type", typeName(ev))
			}
		}
	}
}

// mailExpiredView is the "mailExpired" notification: a message sent to us
// expired unread in our mailbox; its sender says so.
type mailExpiredView struct {
	From   string    `json:"from"`
	ID     string    `json:"id"`
	SentAt time.Time `json:"sentAt"`
	State  string    `json:"state"`
	Reason string    `json:"reason"`
}

// readyView is the "ready" notification: the client is registered under
// name and requests that reach peers can go.
type readyView struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

// acceptPending auto-accepts the incoming offers that were waiting before
// the server subscribed (received while it started, or before a restart).
func (s *Server) acceptPending(ctx context.Context) {
	ts, err := s.client.Transfers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("auto-accept: list transfers", "err", err)
		}
		return
	}
	for _, t := range ts {
		if t.Direction() == domain.Incoming && t.State() == domain.TransferOffered && s.claim(t.ID()) {
			s.accept(ctx, t.ID())
		}
	}
}

// maybeAutoAccept accepts an incoming offer once, in the background; other
// states only end the bookkeeping of an offer.
func (s *Server) maybeAutoAccept(ctx context.Context, t domain.Transfer, bg *sync.WaitGroup) {
	if t.Direction() != domain.Incoming {
		return
	}
	if t.State() != domain.TransferOffered {
		s.autoMu.Lock()
		delete(s.autoAccepting, t.ID())
		s.autoMu.Unlock()
		return
	}
	if !s.claim(t.ID()) {
		return
	}
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.accept(ctx, t.ID())
	}()
}

// claim reports whether id is not being auto-accepted yet and marks it.
func (s *Server) claim(id domain.TransferID) bool {
	s.autoMu.Lock()
	defer s.autoMu.Unlock()
	if s.autoAccepting[id] {
		return false
	}
	if len(s.autoAccepting) >= maxAutoAccepting {
		clear(s.autoAccepting) // a peer flooding offers: forget, at worst accept twice (refused as an invalid move)
	}
	s.autoAccepting[id] = true
	return true
}

func (s *Server) accept(ctx context.Context, id domain.TransferID) {
	if err := s.client.AcceptTransfer(ctx, id); err != nil && ctx.Err() == nil {
		s.logger.Warn("auto-accept failed", "transfer", id.Short(), "err", err)
		return
	}
	s.logger.Info("auto-accepted transfer", "transfer", id.Short())
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }
