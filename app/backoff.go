package app

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Backoff is how long retries wait: Min first, doubling to Max, each wait
// jittered to between half and all of its nominal length so that many
// clients do not retry in step.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is 1 s doubling to 30 s.
var DefaultBackoff = Backoff{Min: time.Second, Max: 30 * time.Second}

func (b Backoff) orDefault() Backoff {
	if b.Min <= 0 {
		b.Min = DefaultBackoff.Min
	}
	if b.Max < b.Min {
		b.Max = max(DefaultBackoff.Max, b.Min)
	}
	return b
}

// next doubles d within [Min, Max].
func (b Backoff) next(d time.Duration) time.Duration {
	if d < b.Min {
		return b.Min
	}
	return min(2*d, b.Max)
}

// jitter returns a wait between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// errNilPort names the nil port a constructor was given.
func errNilPort(name string) error { return errors.New("app: nil " + name) }

// envelopeTimeout bounds one write to a peer's link, so that a peer that
// stops reading cannot hold a flusher or an answer forever.
const envelopeTimeout = 15 * time.Second

// sendEnvelope writes env to peer within envelopeTimeout.
func sendEnvelope(ctx context.Context, link ports.MessageLink, peer domain.Peer, env ports.Envelope) error {
	ctx, cancel := context.WithTimeout(ctx, envelopeTimeout)
	defer cancel()
	return link.Send(ctx, peer, env)
}
