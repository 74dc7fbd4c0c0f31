package app

import (
	"context"
	"log/slog"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxStatuses bounds the contacts' statuses remembered.
const maxStatuses = 1 << 14

// presenceStatus is "tell my contacts whether I am around": our status
// (online, away, busy and a text) travels pairwise, in a KindStatus
// envelope, to each contact when it changes and when the contact comes
// online; strangers never get it, and the registry never sees it. The
// contacts' statuses are kept in memory: a contact tells its status again
// each time it sees us come online.
type presenceStatus struct {
	mu     sync.Mutex
	mine   domain.Status
	theirs map[string]domain.Status // by name key, contacts only
}

func newPresenceStatus() *presenceStatus {
	return &presenceStatus{theirs: make(map[string]domain.Status)}
}

func (p *presenceStatus) own() domain.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mine
}

func (p *presenceStatus) of(name domain.Username) domain.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.theirs[name.Key()]
}

// set records our status; it reports whether it changed.
func (p *presenceStatus) set(s domain.Status) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mine == s {
		return false
	}
	p.mine = s
	return true
}

// received records a contact's status; it reports whether it changed.
func (p *presenceStatus) received(name domain.Username, s domain.Status) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.theirs[name.Key()]; ok && old == s {
		return false
	}
	if len(p.theirs) >= maxStatuses {
		clear(p.theirs)
	}
	p.theirs[name.Key()] = s
	return true
}

// SetStatus sets our status and tells every online contact.
func (c *Client) SetStatus(ctx context.Context, s domain.Status) error {
	s, err := domain.NewStatus(s.Availability, s.Text)
	if err != nil {
		return err
	}
	if !c.status.set(s) {
		return nil
	}
	contacts, err := c.contacts.Contacts(ctx)
	if err != nil {
		return err
	}
	for _, ct := range contacts {
		if p, ok := c.verify.roster.get(ct.Identity.Name()); ok && p.Online {
			name := ct.Identity.Name()
			c.chore(func(ctx context.Context) { c.tellStatus(ctx, name) })
		}
	}
	return nil
}

// Status is our own status.
func (c *Client) Status() domain.Status { return c.status.own() }

// tellStatus sends our status to a contact, best effort.
func (c *Client) tellStatus(ctx context.Context, name domain.Username) {
	if rel, err := c.contacts.relation(ctx, name); err != nil || rel != domain.RelationContact {
		return
	}
	peer, err := c.verify.PeerForSend(ctx, name)
	if err != nil {
		return
	}
	if err := sendEnvelope(ctx, c.link, peer, ports.Envelope{Kind: ports.KindStatus, Status: c.status.own()}); err != nil {
		slog.Debug("status not sent", "peer", name.String(), "err", err)
	}
}

// statusReceived takes a KindStatus envelope: from contacts only.
func (c *Client) statusReceived(ctx context.Context, from domain.Identity, env ports.Envelope) error {
	name := from.Name()
	if rel, err := c.contacts.relation(ctx, name); err != nil || rel != domain.RelationContact {
		return nil // a stranger's status is not shown
	}
	s, err := domain.NewStatus(env.Status.Availability, env.Status.Text)
	if err != nil {
		return err
	}
	if c.status.received(name, s) {
		ct, _ := c.contacts.trust.Get(ctx, name)
		c.bus.Publish(ports.ContactEvent{Name: name, Relation: ct.Relation, Nickname: ct.Nickname, Status: s})
	}
	return nil
}
