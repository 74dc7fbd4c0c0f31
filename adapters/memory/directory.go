package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.Directory = (*Directory)(nil)

// DirectoryConfig tunes a Directory. Zero fields take the defaults.
type DirectoryConfig struct {
	// Heartbeat is how often the session is renewed (default: a third of
	// the session's lifetime the registry granted).
	Heartbeat time.Duration
	// RetryMin and RetryMax bound the backoff of re-registering and
	// re-watching (defaults 20 ms and 1 s).
	RetryMin, RetryMax time.Duration
	// WatchBuffer is how many events a Watch channel buffers before its
	// reader loses events and gets a Resync (default 256).
	WatchBuffer int
}

func (c DirectoryConfig) withDefaults() DirectoryConfig {
	if c.RetryMin <= 0 {
		c.RetryMin = 20 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(time.Second, c.RetryMin)
	}
	if c.WatchBuffer <= 0 {
		c.WatchBuffer = 256
	}
	return c
}

// Directory is a ports.Directory that calls a ports.RegistryService in the
// same process (app.Registry), as the registry adapter's client does over
// HTTPS. Register proves possession of the key over a fresh challenge, then
// a goroutine sends heartbeats and registers again (with backoff) when the
// session becomes invalid. When it belongs to a Host, that host's
// Disconnect fault cuts it from the registry too: calls fail with
// ErrDisconnected, heartbeats stop (so the registry expires us), Watch
// streams report Disconnected and, once healed, Connected and Resync.
//
// Close stops every goroutine and ends the session as a closed connection
// would (RegistryService.Disconnect); a Disconnect fault instead leaves the
// registry to notice by expiry, like a pulled cable.
type Directory struct {
	reg  ports.RegistryService
	host *Host
	cfg  DirectoryConfig

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	mu        sync.Mutex
	me        domain.LocalIdentity
	eps       domain.Endpoints
	token     string
	ttl       time.Duration
	hbCancel  context.CancelFunc
	hbDone    chan struct{}
}

// NewDirectory returns a directory talking to reg; h (may be nil) is the
// host whose faults apply. The cleanup is Close.
func NewDirectory(reg ports.RegistryService, h *Host, cfg DirectoryConfig) (*Directory, func(), error) {
	if reg == nil {
		return nil, nil, errors.New("memory directory: nil registry service")
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Directory{reg: reg, host: h, cfg: cfg.withDefaults(), ctx: ctx, cancel: cancel}
	return d, d.Close, nil
}

// reachable says why the registry cannot be reached now, or nil.
func (d *Directory) reachable() error {
	if d.ctx.Err() != nil {
		return fmt.Errorf("directory: %w", net.ErrClosed)
	}
	if d.host != nil && d.host.net.hostDown(d.host.addr) {
		return fmt.Errorf("directory: %w", ErrDisconnected)
	}
	return nil
}

// faultsChanged is closed at the next change of the network's faults (nil
// without a host: never).
func (d *Directory) faultsChanged() <-chan struct{} {
	if d.host == nil {
		return nil
	}
	return d.host.net.watchFaults()
}

// signIn runs one challenge–proof–register round.
func (d *Directory) signIn(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) (ports.Session, error) {
	if err := d.reachable(); err != nil {
		return ports.Session{}, err
	}
	ch, err := d.reg.Challenge(ctx)
	if err != nil {
		return ports.Session{}, fmt.Errorf("register %s: challenge: %w", me.Name(), err)
	}
	proof := domain.RegistryProof{Action: domain.ActionRegister, Name: me.Name(), Key: me.PublicKey(), Challenge: ch, Endpoints: cloneEndpoints(eps)}
	s, err := d.reg.Register(ctx, ports.RegisterRequest{Proof: proof, Signature: proof.Sign(me)})
	if err != nil {
		return ports.Session{}, fmt.Errorf("register %s: %w", me.Name(), err)
	}
	return s, nil
}

// Register binds me's name to its key, publishes eps and keeps us online.
func (d *Directory) Register(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) error {
	s, err := d.signIn(ctx, me, eps)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return fmt.Errorf("register %s: %w", me.Name(), net.ErrClosed)
	}
	d.me, d.eps, d.token, d.ttl = me, cloneEndpoints(eps), s.Token, s.ExpiresIn
	if d.hbCancel == nil {
		hctx, cancel := context.WithCancel(d.ctx)
		d.hbCancel, d.hbDone = cancel, make(chan struct{})
		d.wg.Add(1)
		go d.keepAlive(hctx, d.hbDone)
	}
	return nil
}

// renew registers again after the session was lost, keeping the
// heartbeat goroutine that calls it.
func (d *Directory) renew(ctx context.Context, me domain.LocalIdentity, eps domain.Endpoints) error {
	s, err := d.signIn(ctx, me, eps)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ctx.Err() == nil {
		d.token, d.ttl = s.Token, s.ExpiresIn
	}
	return nil
}

func (d *Directory) session() (domain.LocalIdentity, domain.Endpoints, string, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.me, d.eps, d.token, d.ttl
}

func (d *Directory) interval(ttl time.Duration) time.Duration {
	if d.cfg.Heartbeat > 0 {
		return d.cfg.Heartbeat
	}
	return max(ttl/3, 10*time.Millisecond)
}

// keepAlive sends heartbeats and registers again when the session is lost.
func (d *Directory) keepAlive(ctx context.Context, done chan struct{}) {
	defer d.wg.Done()
	defer close(done)
	_, _, _, ttl := d.session()
	t := time.NewTimer(d.interval(ttl))
	defer t.Stop()
	backoff := d.cfg.RetryMin
	// Any change of the network's faults wakes us: if the registry is
	// reachable then, renew at once rather than at the next tick, as a
	// client reconnects when its link returns. A short cut may be over
	// before this goroutine runs, so the state alone is not enough: the
	// channel is taken before each heartbeat, so no change goes unseen.
	changed := d.faultsChanged()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			t.Stop()
		case <-t.C:
		}
		changed = d.faultsChanged()
		me, eps, token, ttl := d.session()
		next := d.interval(ttl)
		if d.reachable() == nil {
			err := d.reg.Heartbeat(ctx, me.Name(), token)
			if errors.Is(err, ports.ErrSessionInvalid) {
				err = d.renew(ctx, me, eps)
			}
			switch {
			case err == nil:
				backoff = d.cfg.RetryMin
			case ctx.Err() != nil:
				return
			default:
				slog.Warn("memory directory: keeping the session failed", "name", me.Name().String(), "err", err)
				next, backoff = backoff, min(2*backoff, d.cfg.RetryMax)
			}
		}
		t.Reset(next)
	}
}

// stopKeepAlive stops the heartbeat goroutine and waits for it.
func (d *Directory) stopKeepAlive() {
	d.mu.Lock()
	cancel, done := d.hbCancel, d.hbDone
	d.hbCancel, d.hbDone = nil, nil
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Unregister takes us offline with a signed proof and stops the heartbeats.
func (d *Directory) Unregister(ctx context.Context) error {
	d.stopKeepAlive()
	me, eps, token, _ := d.session()
	if token == "" {
		return nil
	}
	if err := d.reachable(); err != nil {
		return err
	}
	ch, err := d.reg.Challenge(ctx)
	if err != nil {
		return fmt.Errorf("unregister %s: challenge: %w", me.Name(), err)
	}
	proof := domain.RegistryProof{Action: domain.ActionUnregister, Name: me.Name(), Key: me.PublicKey(), Challenge: ch, Endpoints: eps}
	if err := d.reg.Unregister(ctx, proof, proof.Sign(me)); err != nil {
		return fmt.Errorf("unregister %s: %w", me.Name(), err)
	}
	d.mu.Lock()
	d.token = ""
	d.mu.Unlock()
	return nil
}

// Lookup finds one user; domain.ErrUnknownPeer when there is none.
func (d *Directory) Lookup(ctx context.Context, name domain.Username) (domain.Peer, error) {
	if err := d.reachable(); err != nil {
		return domain.Peer{}, err
	}
	p, err := d.reg.Lookup(ctx, name)
	if err != nil {
		return domain.Peer{}, fmt.Errorf("lookup %s: %w", name, err)
	}
	p.Endpoints = cloneEndpoints(p.Endpoints)
	return p, nil
}

// Online lists the users online now.
func (d *Directory) Online(ctx context.Context) ([]domain.Peer, error) {
	if err := d.reachable(); err != nil {
		return nil, err
	}
	ps, err := d.reg.Online(ctx)
	if err != nil {
		return nil, fmt.Errorf("list online: %w", err)
	}
	for i := range ps {
		ps[i].Endpoints = cloneEndpoints(ps[i].Endpoints)
	}
	return ps, nil
}

// Close stops the goroutines and ends the session as a closed connection
// would. It is idempotent.
func (d *Directory) Close() { d.closeOnce.Do(d.close) }

func (d *Directory) close() {
	wasReachable := d.reachable() == nil
	d.mu.Lock()
	d.cancel() // under mu: Register and Watch add to wg only before this
	d.mu.Unlock()
	d.wg.Wait()
	me, _, token, _ := d.session()
	if token != "" && wasReachable {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.reg.Disconnect(ctx, me.Name(), token); err != nil && !errors.Is(err, ports.ErrSessionInvalid) {
			slog.Warn("memory directory: disconnect failed", "name", me.Name().String(), "err", err)
		}
	}
}

// watchOut is the sending side of a Watch stream: it never blocks; when the
// reader is behind, events are lost and a Resync goes out as soon as there
// is room.
type watchOut struct {
	ch   chan ports.DirectoryEvent
	lost bool
}

func (w *watchOut) emit(ev ports.DirectoryEvent) {
	if w.lost {
		select {
		case w.ch <- ports.DirectoryEvent{Kind: ports.Resync}:
			w.lost = false
		default:
			return
		}
	}
	select {
	case w.ch <- ev:
	default:
		w.lost = true
	}
}

// pending is w.ch while a Resync waits to go out, else nil (a select case
// on it never fires).
func (w *watchOut) pending() chan<- ports.DirectoryEvent {
	if w.lost {
		return w.ch
	}
	return nil
}

// Watch streams Connected, the users online now, then every change, and
// connection-state events, until ctx is done or the directory closes.
func (d *Directory) Watch(ctx context.Context) (<-chan ports.DirectoryEvent, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return nil, fmt.Errorf("watch: %w", net.ErrClosed)
	}
	w := &watchOut{ch: make(chan ports.DirectoryEvent, d.cfg.WatchBuffer)}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(d.ctx, cancel)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(w.ch)
		defer stop()
		defer cancel()
		d.watch(ctx, w)
	}()
	return w.ch, nil
}

func (d *Directory) watch(ctx context.Context, w *watchOut) {
	resync := ports.DirectoryEvent{Kind: ports.Resync}
	connected, first := false, true
	backoff := d.cfg.RetryMin
	// wait pauses for dur (0: until faults change), sending a pending Resync.
	wait := func(dur time.Duration, changed <-chan struct{}) bool {
		var tc <-chan time.Time
		if dur > 0 {
			t := time.NewTimer(dur)
			defer t.Stop()
			tc = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return false
			case <-changed:
				return true
			case <-tc:
				return true
			case w.pending() <- resync:
				w.lost = false
			}
		}
	}
	disconnected := func(err error) {
		if connected || first {
			w.emit(ports.DirectoryEvent{Kind: ports.Disconnected, Err: err})
		}
		connected, first = false, false
	}
	for ctx.Err() == nil {
		changed := d.faultsChanged()
		if err := d.reachable(); err != nil {
			disconnected(err)
			if !wait(0, changed) {
				return
			}
			continue
		}
		wctx, wcancel := context.WithCancel(ctx)
		events, err := d.reg.Watch(wctx)
		if err != nil {
			wcancel()
			disconnected(err)
			if !wait(backoff, nil) {
				return
			}
			backoff = min(2*backoff, d.cfg.RetryMax)
			continue
		}
		backoff = d.cfg.RetryMin
		if !connected {
			w.emit(ports.DirectoryEvent{Kind: ports.Connected})
		}
		if !first {
			w.emit(resync)
		}
		connected, first = true, false
		d.forward(wctx, w, events, changed)
		wcancel()
		if ctx.Err() == nil && d.reachable() == nil {
			// The registry dropped us (we were behind) or ended the stream:
			// watch again after a pause.
			if !wait(d.cfg.RetryMin, nil) {
				return
			}
		}
	}
}

// forward copies one registry stream into w until it ends, ctx is done or
// the host is cut off.
func (d *Directory) forward(ctx context.Context, w *watchOut, events <-chan domain.PresenceEvent, changed <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			if d.reachable() != nil {
				return
			}
			changed = d.faultsChanged()
		case w.pending() <- ports.DirectoryEvent{Kind: ports.Resync}:
			w.lost = false
		case ev, ok := <-events:
			if !ok {
				return
			}
			p := ev.Peer
			p.Endpoints = cloneEndpoints(p.Endpoints)
			w.emit(ports.DirectoryEvent{Kind: ports.PeerChanged, Peer: p})
		}
	}
}
