package app

import (
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Quota limits what one peer may make us store: chats and offers per
// second (a token bucket of Burst tokens refilled at Rate a second) and
// bytes of message text per UTC day. It is checked before anything is
// written; beyond it the peer gets a KindRefused answer saying when to
// write again, and a well-behaved sender keeps the message in its outbox
// until then, so nothing is lost.
type Quota struct {
	Rate        float64 // envelopes (chats and offers) a second
	Burst       int     // bucket size
	BytesPerDay int64   // message text bytes a UTC day
}

// Default quotas: generous for contacts (a person, or a bot on a fast
// link, never meets them), strict for strangers (whose messages are
// requests with caps of their own: domain.DefaultQuarantineLimits).
var (
	DefaultContactQuota  = Quota{Rate: 10000, Burst: 100000, BytesPerDay: 4 << 30}
	DefaultStrangerQuota = Quota{Rate: 2, Burst: 40, BytesPerDay: 1 << 20}
)

func (q Quota) orDefault(d Quota) Quota {
	if q.Rate <= 0 {
		q.Rate = d.Rate
	}
	if q.Burst <= 0 {
		q.Burst = d.Burst
	}
	if q.BytesPerDay <= 0 {
		q.BytesPerDay = d.BytesPerDay
	}
	return q
}

// maxQuotaPeers bounds the peers whose buckets are remembered; beyond, an
// arbitrary one is forgotten (it starts again with a full bucket: only
// more lenient, never stricter).
const maxQuotaPeers = 4096

// minRetryAfter is the shortest wait a refusal asks for.
const minRetryAfter = 250 * time.Millisecond

// quotas are the per-peer buckets, in memory: the day's byte count starts
// again after a restart (the quarantine's caps, which bound what a
// stranger can make us store, are durable).
type quotas struct {
	contact, stranger Quota

	mu    sync.Mutex
	peers map[string]*peerBucket
}

type peerBucket struct {
	tokens float64
	at     time.Time
	day    int64 // Unix day of bytes
	bytes  int64
	// until: the peer was refused for its rate; everything it sends
	// before then is refused too, so its retries arrive in order.
	until time.Time
}

func newQuotas(contact, stranger Quota) *quotas {
	return &quotas{contact: contact.orDefault(DefaultContactQuota), stranger: stranger.orDefault(DefaultStrangerQuota),
		peers: make(map[string]*peerBucket)}
}

// take charges one envelope of size text bytes to name, or says why not
// and how long to wait.
func (q *quotas) take(name domain.Username, isContact bool, size int64, now time.Time) (ok bool, why ports.RefusalReason, retry time.Duration) {
	lim := q.stranger
	if isContact {
		lim = q.contact
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	b, found := q.peers[name.Key()]
	if !found {
		if len(q.peers) >= maxQuotaPeers {
			for k := range q.peers {
				delete(q.peers, k)
				break
			}
		}
		b = &peerBucket{tokens: float64(lim.Burst), at: now}
		q.peers[name.Key()] = b
	}
	if now.Before(b.until) {
		return false, ports.RefusedSlowDown, b.until.Sub(now)
	}
	b.tokens += now.Sub(b.at).Seconds() * lim.Rate
	b.at = now
	if b.tokens > float64(lim.Burst) {
		b.tokens = float64(lim.Burst)
	}
	if b.tokens < 1 {
		// Wait until a quarter of the bucket is back, so the sender's
		// retry is a burst that passes rather than one envelope.
		need := max(1, float64(lim.Burst)/4) - b.tokens
		retry = max(minRetryAfter, time.Duration(need/lim.Rate*float64(time.Second)))
		b.until = now.Add(retry)
		return false, ports.RefusedSlowDown, retry
	}
	day := now.UTC().Unix() / 86400
	if b.day != day {
		b.day, b.bytes = day, 0
	}
	if b.bytes+size > lim.BytesPerDay {
		next := time.Unix((day+1)*86400, 0)
		return false, ports.RefusedOverQuota, max(minRetryAfter, next.Sub(now))
	}
	b.tokens--
	b.bytes += size
	return true, 0, 0
}
