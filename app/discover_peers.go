package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// MaxRosterPeers bounds the peers a client remembers from its directory,
// so a hostile registry sending endless distinct names cannot grow the
// client's memory without limit. When full, a new name takes the place of a
// peer seen offline; when every remembered peer is online, the new name is
// refused (and logged).
const MaxRosterPeers = 100_000

// roster is the live presence a client has seen from its directory.
type roster struct {
	mu      sync.Mutex
	peers   map[string]domain.Peer // by name key
	max     int
	offline int // entries of peers with Online false
	refused int // names refused for max, logged at the first and every 10,000th
}

func newRoster() *roster { return &roster{peers: make(map[string]domain.Peer), max: MaxRosterPeers} }

func (r *roster) get(name domain.Username) (domain.Peer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.peers[name.Key()]
	return p, ok
}

// put stores p and reports whether it just came online or moved. stored is
// false when p's name is new and the roster is full of online peers.
func (r *roster) put(p domain.Peer) (cameOnline, stored bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := p.Name().Key()
	old, had := r.peers[k]
	if !had && len(r.peers) >= r.max && !r.evictOfflineLocked() {
		if r.refused++; r.refused%10_000 == 1 {
			slog.Warn("directory sent more peers than we remember; ignoring further names",
				"max_peers", r.max, "refused", r.refused, "peer", p.Name().String())
		}
		return false, false
	}
	if had && !old.Online {
		r.offline--
	}
	if !p.Online {
		r.offline++
	}
	r.peers[k] = p
	if !p.Online {
		return false, true
	}
	return !had || !old.Online || !slices.Equal(old.Endpoints.Link, p.Endpoints.Link) ||
		!slices.Equal(old.Endpoints.File, p.Endpoints.File) || !old.Identity.SameKey(p.Identity.PublicKey()), true
}

// evictOfflineLocked forgets one peer seen offline, if any. Callers hold r.mu.
func (r *roster) evictOfflineLocked() bool {
	if r.offline == 0 {
		return false
	}
	for k, p := range r.peers {
		if !p.Online {
			delete(r.peers, k)
			r.offline--
			return true
		}
	}
	return false
}

func (r *roster) list() []domain.Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]domain.Peer, 0, len(r.peers))
	for _, p := range r.peers {
		out = append(out, p)
	}
	return out
}

// DiscoverPeers is "show me who is there": the directory's live presence
// (watched, not polled) merged with the contacts we pinned.
type DiscoverPeers struct {
	me      domain.LocalIdentity
	dir     ports.Directory
	trust   ports.TrustStore
	verify  *VerifyContact
	events  ports.EventSink
	backoff Backoff
}

// DiscoverPeersInput is empty: the list is everyone we can see.
type DiscoverPeersInput struct{}

// NewDiscoverPeers builds the use-case; it shares the verify use-case's view
// of presence so that sending finds endpoints without asking the directory.
func NewDiscoverPeers(me domain.LocalIdentity, dir ports.Directory, trust ports.TrustStore, verify *VerifyContact, events ports.EventSink, backoff Backoff) (*DiscoverPeers, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case dir == nil:
		return nil, errNilPort("directory")
	case trust == nil:
		return nil, errNilPort("trust store")
	case verify == nil:
		return nil, errNilPort("verify use-case")
	case events == nil:
		return nil, errNilPort("event sink")
	}
	return &DiscoverPeers{me: me, dir: dir, trust: trust, verify: verify, events: events, backoff: backoff.orDefault()}, nil
}

// Handle lists peers: everyone seen online or pinned, contacts first, then
// online first, then by name. Unread counts are the client's to fill in.
func (d *DiscoverPeers) Handle(ctx context.Context, _ DiscoverPeersInput) ([]ports.PeerView, error) {
	byKey := make(map[string]ports.PeerView)
	for _, p := range d.verify.roster.list() {
		if p.Name().Equal(d.me.Name()) {
			continue
		}
		byKey[p.Name().Key()] = ports.PeerView{Peer: p}
	}
	contacts, err := d.trust.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list contacts: %w", err)
	}
	for _, c := range contacts {
		k := c.Identity.Name().Key()
		v, ok := byKey[k]
		if !ok {
			v = ports.PeerView{Peer: domain.Peer{Identity: c.Identity}}
		}
		v.Verified = c.Verified
		v.Contact, v.Blocked, v.Nickname = c.IsContact(), c.IsBlocked(), c.Nickname
		byKey[k] = v
	}
	out := make([]ports.PeerView, 0, len(byKey))
	for _, v := range byKey {
		v.KeyChanged = d.verify.keyChangePending(v.Peer.Name())
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b ports.PeerView) int {
		if a.Contact != b.Contact { // contacts first, then the directory
			if a.Contact {
				return -1
			}
			return 1
		}
		if a.Peer.Online != b.Peer.Online {
			if a.Peer.Online {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Peer.Name().String(), b.Peer.Name().String())
	})
	return out, nil
}

// Watch follows the directory's presence until ctx is done, publishing
// PresenceEvent and DirectoryStatusEvent, checking every key it sees against
// the pins, and calling online for each peer that came online or moved. It
// re-subscribes with backoff when the stream ends.
func (d *DiscoverPeers) Watch(ctx context.Context, online func(domain.Peer)) {
	wait := time.Duration(0)
	for ctx.Err() == nil {
		ch, err := d.dir.Watch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			slog.Warn("directory watch failed", "err", err)
			d.events.Publish(directoryDown(err))
			wait = d.backoff.next(wait)
			if !sleep(ctx, jitter(wait)) {
				return
			}
			continue
		}
		wait = 0
		for ev := range ch {
			d.apply(ctx, ev, online)
		}
	}
}

func (d *DiscoverPeers) apply(ctx context.Context, ev ports.DirectoryEvent, online func(domain.Peer)) {
	switch ev.Kind {
	case ports.PeerChanged:
		d.see(ctx, ev.Peer, online)
	case ports.Connected:
		d.events.Publish(ports.DirectoryStatusEvent{Connected: true})
	case ports.Disconnected:
		if ev.Err == nil {
			ev.Err = errors.New("directory unreachable")
		}
		d.events.Publish(directoryDown(ev.Err))
	case ports.Resync:
		d.resync(ctx, online)
	}
}

func (d *DiscoverPeers) see(ctx context.Context, p domain.Peer, online func(domain.Peer)) {
	if p.Identity.IsZero() || p.Name().Equal(d.me.Name()) {
		return
	}
	if p.Online {
		if err := d.verify.Observe(ctx, p.Identity); err != nil {
			var kc *domain.KeyChangedError
			if !errors.As(err, &kc) {
				slog.Warn("check presence key", "peer", p.Name().String(), "err", err)
			}
		}
	}
	came, stored := d.verify.roster.put(p)
	if !stored {
		return
	}
	d.events.Publish(ports.PresenceEvent{Peer: p})
	if came && online != nil {
		online(p)
	}
}

// resync lists who is online again and marks everyone else offline.
func (d *DiscoverPeers) resync(ctx context.Context, online func(domain.Peer)) {
	now, err := d.dir.Online(ctx)
	if err != nil {
		slog.Warn("directory resync", "err", err)
		return
	}
	seen := make(map[string]bool, len(now))
	for _, p := range now {
		seen[p.Name().Key()] = true
		d.see(ctx, p, online)
	}
	for _, p := range d.verify.roster.list() {
		if p.Online && !seen[p.Name().Key()] {
			p.Online = false
			d.see(ctx, p, online)
		}
	}
}

// directoryDown is the status event for a directory we cannot use because
// of err; a certificate that does not match the pin is flagged for the
// interfaces' full warning.
func directoryDown(err error) ports.DirectoryStatusEvent {
	return ports.DirectoryStatusEvent{Connected: false, Err: err.Error(), CertChanged: errors.Is(err, ports.ErrDirectoryCertChanged)}
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
