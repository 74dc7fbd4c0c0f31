package app

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// progressEvery is how often a moving transfer reports progress: never more
// often, and at least this often while bytes move.
const progressEvery = 250 * time.Millisecond

// transferBook serialises every change of a stored transfer (the user, the
// peer and the byte streams all move the same transfers) and announces it.
type transferBook struct {
	store  ports.TransferStore
	clock  ports.Clock
	events ports.EventSink

	mu sync.Mutex
}

func newTransferBook(store ports.TransferStore, clock ports.Clock, events ports.EventSink) *transferBook {
	return &transferBook{store: store, clock: clock, events: events}
}

// create stores a new transfer and announces it.
func (b *transferBook) create(ctx context.Context, t domain.Transfer) error {
	return b.createAs(ctx, t, false)
}

// createSoon is create with SaveSoon: for an offer received, which the
// sender offers again until it hears an answer.
func (b *transferBook) createSoon(ctx context.Context, t domain.Transfer) error {
	return b.createAs(ctx, t, true)
}

func (b *transferBook) createAs(ctx context.Context, t domain.Transfer, soon bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.store.Get(ctx, t.ID()); err == nil {
		return fmt.Errorf("transfer %s exists already", t.ID().Short())
	}
	if err := b.save(ctx, t, soon); err != nil {
		return fmt.Errorf("store transfer %s: %w: %w", t.ID().Short(), errNotStored, err)
	}
	b.events.Publish(ports.TransferEvent{Transfer: t})
	return nil
}

func (b *transferBook) get(ctx context.Context, id domain.TransferID) (domain.Transfer, error) {
	t, err := b.store.Get(ctx, id)
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("transfer %s: %w", id.Short(), err)
	}
	return t, nil
}

// update loads a transfer, lets change move it and stores and announces the
// result. change sees the time to use; an error from it stores nothing.
func (b *transferBook) update(ctx context.Context, id domain.TransferID, change func(t *domain.Transfer, now time.Time) error) (domain.Transfer, error) {
	return b.applyAs(ctx, id, change, false, false)
}

// updateQuietly is update for bookkeeping between progress ticks: a change
// that leaves the transfer in progress is stored but not announced (the
// progress ticker announces it, at most every progressEvery).
func (b *transferBook) updateQuietly(ctx context.Context, id domain.TransferID, change func(t *domain.Transfer, now time.Time) error) (domain.Transfer, error) {
	return b.applyAs(ctx, id, change, true, false)
}

// updateSoon is update with SaveSoon, for a change whose loss on a power
// cut only repeats a step (ports.TransferStore): it does not wait for the
// disk, so the first byte of a file need not wait for one fsync per step
// on the way to it. The next durable change carries it to the disk.
func (b *transferBook) updateSoon(ctx context.Context, id domain.TransferID, change func(t *domain.Transfer, now time.Time) error) (domain.Transfer, error) {
	return b.applyAs(ctx, id, change, false, true)
}

// updateQuietlySoon is updateQuietly with SaveSoon.
func (b *transferBook) updateQuietlySoon(ctx context.Context, id domain.TransferID, change func(t *domain.Transfer, now time.Time) error) (domain.Transfer, error) {
	return b.applyAs(ctx, id, change, true, true)
}

func (b *transferBook) save(ctx context.Context, t domain.Transfer, soon bool) error {
	if soon {
		return b.store.SaveSoon(ctx, t)
	}
	return b.store.Save(ctx, t)
}

func (b *transferBook) applyAs(ctx context.Context, id domain.TransferID, change func(t *domain.Transfer, now time.Time) error, quiet, soon bool) (domain.Transfer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.store.Get(ctx, id)
	if err != nil {
		return domain.Transfer{}, fmt.Errorf("transfer %s: %w", id.Short(), err)
	}
	before := t.State()
	if err := change(&t, b.clock.Now()); err != nil {
		return t, err
	}
	if err := b.save(context.WithoutCancel(ctx), t, soon); err != nil {
		return t, fmt.Errorf("store transfer %s: %w", id.Short(), err)
	}
	if !quiet || before != domain.TransferInProgress || t.State() != domain.TransferInProgress {
		b.events.Publish(ports.TransferEvent{Transfer: t})
	}
	return t, nil
}

// startAt moves a transfer to in progress with done bytes at the receiver,
// from accepted, interrupted, or in progress (a new file, a restart).
func startAt(t *domain.Transfer, done int64, now time.Time) error {
	switch t.State() {
	case domain.TransferAccepted:
		return t.Start(done, now)
	case domain.TransferInterrupted:
		return t.Resume(done, now)
	case domain.TransferInProgress:
		if done >= t.Done() {
			return t.Progress(done, now)
		}
		// Fewer bytes than recorded (the receiver lost a part): start over
		// from there.
		if err := t.Interrupt(now); err != nil {
			return err
		}
		return t.Resume(done, now)
	}
	return &domain.TransitionError{What: "transfer " + t.ID().Short(), From: t.State().String(), To: domain.TransferInProgress.String()}
}

// progressTicker reports a moving transfer's progress every progressEvery
// while the bytes at the far end change. Its goroutine lives from start to
// stop.
type progressTicker struct {
	done atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
}

// startProgress reports base+n (n set with set) through report.
func startProgress(ctx context.Context, initial int64, report func(ctx context.Context, done int64)) *progressTicker {
	p := &progressTicker{stop: make(chan struct{})}
	p.done.Store(initial)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		last := initial
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.stop:
				return
			case <-t.C:
				if d := p.done.Load(); d != last {
					last = d
					report(ctx, d)
				}
			}
		}
	}()
	return p
}

func (p *progressTicker) set(done int64) { p.done.Store(done) }

// close stops the reporting goroutine and waits for it.
func (p *progressTicker) close() {
	close(p.stop)
	p.wg.Wait()
}

// fileBase is the number of bytes in the files before index.
func fileBase(m domain.Manifest, index int) int64 {
	var n int64
	for _, f := range m.Files[:index] {
		n += f.Size
	}
	return n
}
