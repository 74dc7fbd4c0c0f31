package app

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Directories is several directories behind one ports.Directory: a primary
// one that binds names to keys (the registry) and a local one that only
// reports what it heard (LAN discovery). Either may be absent, not both.
//
//   - Register and Unregister go to both; the primary's refusal decides
//     (ErrNameTaken, ErrInvalidUsername, ErrBadSignature); the local
//     directory never fails them, it is logged. When the primary is merely
//     unreachable and the local directory took us, Register succeeds and
//     keeps registering with the primary in the background (with backoff),
//     so the LAN works while the registry is down.
//   - Lookup and Online prefer the primary's peer and merge in the local
//     endpoints (first: they are cheaper) when the local peer has the same
//     key and is online; a peer is offline only when offline in both.
//     Watch makes one exception: when the primary reports a peer back
//     online after offline while the local directory listed it throughout
//     (a restart the LAN has not noticed yet), the merged stream says
//     offline first, so the return is seen as coming online.
//   - A local peer whose key differs from the primary's for the same name is
//     not merged (and is logged); a name the primary does not know is the
//     local directory's. Pins are checked above this type, as for any
//     directory: PeerVerifier and VerifyContact never let it override one.
type Directories struct {
	primary ports.Directory
	local   ports.Directory
	retry   Backoff

	mu        sync.Mutex
	conflict  map[string]domain.Fingerprint // name key → local key last logged as differing
	retryStop context.CancelFunc            // the background registration, if running
	retryDone chan struct{}
	closed    bool
}

// maxConflicts bounds the differing keys Directories remembers logging.
const maxConflicts = 1024

var _ ports.Directory = (*Directories)(nil)

// NewDirectories composes primary and local; either may be nil, not both.
func NewDirectories(primary, local ports.Directory) (*Directories, error) {
	if primary == nil && local == nil {
		return nil, errNilPort("directory")
	}
	return &Directories{primary: primary, local: local, retry: DefaultBackoff, conflict: make(map[string]domain.Fingerprint)}, nil
}

// SetRetry sets the backoff of registering with an unreachable primary in
// the background (default DefaultBackoff). Call it before Register.
func (d *Directories) SetRetry(b Backoff) { d.retry = b.orDefault() }

// refused reports whether err is the primary's final answer, not an outage.
func refused(err error) bool {
	return errors.Is(err, domain.ErrNameTaken) || errors.Is(err, domain.ErrInvalidUsername) || errors.Is(err, domain.ErrBadSignature)
}

// Register registers with both. The primary's refusal is returned; its
// outage only when there is no local directory that took us.
func (d *Directories) Register(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) error {
	d.stopRetry()
	localOK := false
	if d.local != nil {
		if err := d.local.Register(ctx, me, eps); err != nil {
			slog.Warn("local discovery: cannot announce us", "err", err)
		} else {
			localOK = true
		}
	}
	if d.primary == nil {
		return nil
	}
	err := d.primary.Register(ctx, me, eps)
	if err == nil || refused(err) || !localOK || ctx.Err() != nil {
		return err
	}
	slog.Warn("registry unreachable: running on the LAN, registering again in the background", "err", err)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return err
	}
	rctx, cancel := context.WithCancel(context.Background())
	d.retryStop, d.retryDone = cancel, make(chan struct{})
	go d.registerLater(rctx, d.retryDone, me, eps)
	return nil
}

// registerLater registers with the primary until it answers, ctx is done
// or it refuses us (logged: we stay on the LAN).
func (d *Directories) registerLater(ctx context.Context, done chan struct{}, me domain.LocalIdentity, eps domain.Endpoints) {
	defer close(done)
	wait := time.Duration(0)
	for {
		wait = d.retry.next(wait)
		if !sleep(ctx, jitter(wait)) {
			return
		}
		err := d.primary.Register(ctx, me, eps)
		switch {
		case err == nil:
			slog.Info("registered with the registry", "name", me.Name().String())
			return
		case ctx.Err() != nil:
			return
		case refused(err):
			slog.Error("the registry refuses us: staying on the LAN only", "name", me.Name().String(), "err", err)
			return
		}
	}
}

// stopRetry ends the background registration and waits for it.
func (d *Directories) stopRetry() {
	d.mu.Lock()
	stop, done := d.retryStop, d.retryDone
	d.retryStop, d.retryDone = nil, nil
	d.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// Close stops the background registration; the member directories are
// closed by their own cleanups.
func (d *Directories) Close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.stopRetry()
}

// Unregister leaves both; only the primary's error is returned.
func (d *Directories) Unregister(ctx context.Context) error {
	d.stopRetry()
	if d.local != nil {
		if err := d.local.Unregister(ctx); err != nil {
			slog.Warn("local discovery: goodbye", "err", err)
		}
	}
	if d.primary == nil {
		return nil
	}
	return d.primary.Unregister(ctx)
}

// Lookup asks both: the primary's peer with the local endpoints merged in,
// or the local peer when the primary does not know the name (or cannot be
// asked). domain.ErrUnknownPeer when neither knows it.
func (d *Directories) Lookup(ctx context.Context, name domain.Username) (domain.Peer, error) {
	var lp domain.Peer
	lerr := domain.ErrUnknownPeer
	if d.local != nil {
		lp, lerr = d.local.Lookup(ctx, name)
	}
	if d.primary == nil {
		return lp, lerr
	}
	p, err := d.primary.Lookup(ctx, name)
	switch {
	case err == nil:
		if lerr == nil {
			return d.merge(p, lp), nil
		}
		return p, nil
	case lerr == nil:
		return lp, nil
	}
	return domain.Peer{}, err
}

// merge adds what the local directory knows of p's name, if it is p.
func (d *Directories) merge(p, local domain.Peer) domain.Peer {
	if !local.Identity.SameKey(p.Identity.PublicKey()) {
		d.logConflict(p.Identity, local.Identity)
		return p
	}
	if !local.Online {
		return p
	}
	out := p
	if !p.Online { // where the registry last saw it is stale
		out.Endpoints.Link, out.Endpoints.File = nil, nil
	}
	out.Online = true
	out.Endpoints.Link = mergeAddrs(local.Endpoints.Link, out.Endpoints.Link)
	out.Endpoints.File = mergeAddrs(local.Endpoints.File, out.Endpoints.File)
	if local.LastSeen.After(out.LastSeen) {
		out.LastSeen = local.LastSeen
	}
	return out
}

// mergeAddrs is first then the addresses of second not in first.
func mergeAddrs(first, second []string) []string {
	out := slices.Clone(first)
	for _, a := range second {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// logConflict logs once per differing key that the local directory knows
// another key for a name the primary binds.
func (d *Directories) logConflict(bound, local domain.Identity) {
	fp := local.Fingerprint()
	k := bound.Name().Key()
	d.mu.Lock()
	last, ok := d.conflict[k]
	if !ok && len(d.conflict) >= maxConflicts {
		clear(d.conflict)
	}
	d.conflict[k] = fp
	d.mu.Unlock()
	if ok && last == fp {
		return
	}
	slog.Warn("the LAN announces a name the registry binds to another key: not merged",
		"peer", bound.Name().String(), "registry", bound.Fingerprint().Short(), "lan", fp.Short())
}

// Online lists who is online in either, merged by name.
func (d *Directories) Online(ctx context.Context) ([]domain.Peer, error) {
	var prim, loc []domain.Peer
	if d.primary != nil {
		var err error
		if prim, err = d.primary.Online(ctx); err != nil && d.local == nil {
			return nil, err
		} else if err != nil {
			slog.Warn("registry unreachable: listing the LAN only", "err", err)
		}
	}
	if d.local != nil {
		var err error
		if loc, err = d.local.Online(ctx); err != nil && d.primary == nil {
			return nil, err
		} else if err != nil {
			slog.Warn("local discovery: list", "err", err)
		}
	}
	byName := make(map[string]domain.Peer, len(loc))
	for _, p := range loc {
		byName[p.Name().Key()] = p
	}
	out := make([]domain.Peer, 0, len(prim)+len(loc))
	for _, p := range prim {
		k := p.Name().Key()
		if l, ok := byName[k]; ok {
			p = d.merge(p, l)
			delete(byName, k)
		}
		out = append(out, p)
	}
	for _, p := range loc {
		if _, ok := byName[p.Name().Key()]; !ok {
			continue
		}
		// The primary may bind the name though it is offline there.
		if d.primary != nil {
			if rp, err := d.primary.Lookup(ctx, p.Name()); err == nil {
				if p = d.merge(rp, p); !p.Online {
					continue
				}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Watch merges both streams by name: every change of either side is
// reported as the merged peer. Connection events come from the primary
// (from the local directory only when there is no primary). The stream
// ends when ctx is done or every member's stream has ended.
func (d *Directories) Watch(ctx context.Context) (<-chan ports.DirectoryEvent, error) {
	ctx, cancel := context.WithCancel(ctx)
	var prim, loc <-chan ports.DirectoryEvent
	var err error
	if d.primary != nil {
		if prim, err = d.primary.Watch(ctx); err != nil {
			cancel()
			return nil, err
		}
	}
	if d.local != nil {
		if loc, err = d.local.Watch(ctx); err != nil {
			slog.Warn("local discovery: watch", "err", err)
			loc = nil
			if prim == nil {
				cancel()
				return nil, err
			}
		}
	}
	w := &mergedWatch{d: d, out: make(chan ports.DirectoryEvent, watchBuffer),
		prim: make(map[string]domain.Peer), loc: make(map[string]domain.Peer)}
	go func() {
		defer close(w.out)
		defer cancel()
		w.run(ctx, prim, loc)
	}()
	return w.out, nil
}

// watchBuffer is what a merged Watch holds before its reader loses events
// (and is sent a Resync).
const watchBuffer = 256

// mergedWatch is the state of one Directories.Watch stream.
type mergedWatch struct {
	d         *Directories
	out       chan ports.DirectoryEvent
	lost      bool
	prim, loc map[string]domain.Peer // last heard from each, by name key
}

func (w *mergedWatch) run(ctx context.Context, prim, loc <-chan ports.DirectoryEvent) {
	for prim != nil || loc != nil {
		var pending chan<- ports.DirectoryEvent
		if w.lost {
			pending = w.out
		}
		select {
		case <-ctx.Done():
			return
		case pending <- ports.DirectoryEvent{Kind: ports.Resync}:
			w.lost = false
		case ev, ok := <-prim:
			if !ok {
				prim = nil
				continue
			}
			w.apply(ctx, ev, w.d.primary, false)
		case ev, ok := <-loc:
			if !ok {
				loc = nil
				continue
			}
			w.apply(ctx, ev, w.d.local, true)
		}
	}
}

// apply takes one member's event; status events pass only from the member
// that speaks for the connection.
func (w *mergedWatch) apply(ctx context.Context, ev ports.DirectoryEvent, from ports.Directory, local bool) {
	seen, status := w.prim, true
	if local {
		seen, status = w.loc, w.d.primary == nil
	}
	switch ev.Kind {
	case ports.PeerChanged:
		if ev.Peer.Identity.IsZero() {
			return
		}
		k := ev.Peer.Name().Key()
		prev, had := seen[k]
		if !had && len(seen) >= MaxRosterPeers {
			return // the member sent more names than a roster holds
		}
		before := w.mergedFor(k)
		seen[k] = ev.Peer
		if local && w.d.primary != nil {
			w.learnPrimary(ctx, ev.Peer.Name())
		}
		merged := w.mergedFor(k)
		if !local && had && !prev.Online && ev.Peer.Online && before.Online {
			// The registry saw the peer leave and come back (killed and
			// started again) while the LAN still lists its old run: say it
			// went away first, so that watchers take it as come online
			// (resuming transfers, flushing the outbox) even when it is
			// back on the same endpoints.
			gone := merged
			gone.Online, gone.Endpoints = false, domain.Endpoints{}
			w.emit(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: gone})
		}
		w.emit(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: merged})
	case ports.Resync:
		now, err := from.Online(ctx)
		if err != nil {
			slog.Warn("directory resync", "err", err)
		} else {
			clear(seen)
			for _, p := range now {
				if len(seen) < MaxRosterPeers {
					seen[p.Name().Key()] = p
				}
			}
		}
		w.emit(ports.DirectoryEvent{Kind: ports.Resync})
	default:
		if status {
			w.emit(ev)
		}
	}
}

// learnPrimary asks the primary about a name only the local directory
// reported, so that a name the primary binds to another key (offline
// there, so absent from its stream) is not taken from the LAN.
func (w *mergedWatch) learnPrimary(ctx context.Context, name domain.Username) {
	k := name.Key()
	if _, ok := w.prim[k]; ok || len(w.prim) >= MaxRosterPeers {
		return
	}
	if p, err := w.d.primary.Lookup(ctx, name); err == nil {
		w.prim[k] = p
	}
}

// mergedFor is the peer of name key k as both members last told it.
func (w *mergedWatch) mergedFor(k string) domain.Peer {
	p, hasP := w.prim[k]
	l, hasL := w.loc[k]
	switch {
	case hasP && hasL:
		return w.d.merge(p, l)
	case hasP:
		return p
	}
	return l
}

func (w *mergedWatch) emit(ev ports.DirectoryEvent) {
	if w.lost {
		select {
		case w.out <- ports.DirectoryEvent{Kind: ports.Resync}:
			w.lost = false
		default:
			return
		}
	}
	select {
	case w.out <- ev:
	default:
		w.lost = true
	}
}
