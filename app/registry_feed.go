package app

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// localFeedSize is how many recent presence events a single node keeps for
// clients resuming their stream (Last-Event-ID).
const localFeedSize = 4096

// localFeed numbers a single node's presence events and keeps the recent
// ones. IDs are "EPOCH-SEQ" with the node's start time in milliseconds as
// epoch, so an ID from before a restart is told apart (ErrResumeGap) and
// never mistaken for a later event.
type localFeed struct {
	mu    sync.Mutex
	epoch uint64
	seq   uint64
	ring  []*ports.PresenceUpdate // the last len(ring) events, ring[seq%len]
}

func newLocalFeed(start time.Time, size int) *localFeed {
	return &localFeed{epoch: uint64(max(start.UnixMilli(), 1)), ring: make([]*ports.PresenceUpdate, size)}
}

// add numbers each of es, keeps it and hands it to fanout (which must not
// block), under one lock, so watchers get events in ID order and the
// events of one change (es) next to each other: every one but the last is
// marked More (ports.PresenceUpdate).
func (f *localFeed) add(fanout func(*ports.PresenceUpdate), es ...domain.PresenceEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range es {
		f.seq++
		u := &ports.PresenceUpdate{ID: strconv.FormatUint(f.epoch, 10) + "-" + strconv.FormatUint(f.seq, 10), Event: e, More: i < len(es)-1}
		f.ring[f.seq%uint64(len(f.ring))] = u
		fanout(u)
	}
}

// nameLocks is a fixed set of mutexes, one name hashing to each.
type nameLocks [64]sync.Mutex

// lock locks name's mutex and returns its unlock.
func (l *nameLocks) lock(name domain.Username) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name.Key()))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

func (f *localFeed) since(after string, limit int) ([]ports.PresenceUpdate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	epoch, seq, ok := parseLocalID(after)
	size := uint64(len(f.ring))
	if !ok || epoch != f.epoch || seq > f.seq || f.seq-seq > size {
		return nil, fmt.Errorf("resume after %.40q: %w", after, ports.ErrResumeGap)
	}
	out := make([]ports.PresenceUpdate, 0, min(f.seq-seq, uint64(max(limit, 0))))
	for s := seq + 1; s <= f.seq && (limit <= 0 || len(out) < limit); s++ {
		out = append(out, *f.ring[s%size])
	}
	return out, nil
}

func parseLocalID(id string) (epoch, seq uint64, ok bool) {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			e, err1 := strconv.ParseUint(id[:i], 10, 64)
			s, err2 := strconv.ParseUint(id[i+1:], 10, 64)
			return e, s, err1 == nil && err2 == nil
		}
	}
	return 0, 0, false
}

// WatchUpdates streams every presence change from now on with its ID (no
// snapshot: the caller lists Online after subscribing), until ctx is done
// or the watcher falls WatchBuffer events behind (the channel closes).
func (r *Registry) WatchUpdates(ctx context.Context) (<-chan ports.PresenceUpdate, error) {
	w, err := r.addWatcher()
	if err != nil {
		return nil, err
	}
	out := make(chan ports.PresenceUpdate)
	go func() {
		defer close(out)
		defer r.drop(w)
		for {
			select {
			case u, ok := <-w.in:
				if !ok {
					return
				}
				select {
				case out <- *u:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// Since returns the presence changes after ID after, oldest first, at most
// limit: from this node's recent events, or from the shared bus.
// ports.ErrResumeGap when they are no longer all kept.
func (r *Registry) Since(ctx context.Context, after string, limit int) ([]ports.PresenceUpdate, error) {
	if r.bus != nil {
		return r.bus.Since(ctx, after, limit)
	}
	return r.feed.since(after, limit)
}

var _ ports.PresenceFeed = (*Registry)(nil)

// follow hands every node's presence events from the shared bus to this
// node's watchers until ctx is done. When the bus lost events this node
// had not seen yet (it was cut off longer than the bus keeps them), every
// watcher is dropped, so each resyncs from a fresh snapshot.
func (r *Registry) follow(ctx context.Context) {
	failures := 0
	from := r.followFrom
	for ctx.Err() == nil {
		err := r.bus.Follow(ctx, from, func(u ports.PresenceUpdate) {
			failures = 0
			r.fanout(&u)
		}, func(err error) {
			if failures++; failures == 1 || failures%30 == 0 {
				r.log.Warn("presence bus: following the other nodes' events failed; retrying", "err", err, "failures", failures)
			}
		})
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ports.ErrResumeGap) {
			r.log.Warn("presence bus: events were lost while cut off; every presence stream resyncs")
		} else {
			r.log.Warn("presence bus: follow ended", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		// Start again from the end as it is before the watchers are
		// dropped: their fresh snapshots reflect at least that.
		last, err := r.bus.Last(ctx)
		if err != nil {
			continue // Redis still away; try again
		}
		from = last
		r.dropAll()
	}
}

// dropAll ends every watcher (each watches again and resyncs).
func (r *Registry) dropAll() {
	r.wMu.Lock()
	ws := make([]*regWatcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.wMu.Unlock()
	for _, w := range ws {
		r.drop(w)
	}
}

// memChallenges is the single node's challenge store: a map with a global
// cap and a count per client.
type memChallenges struct {
	mu        sync.Mutex
	max       int
	m         map[[domain.ChallengeSize]byte]challengeEntry
	perClient map[string]int // outstanding challenges by client ("" not counted)
}

type challengeEntry struct {
	expires time.Time
	client  string
}

var _ ports.ChallengeStore = (*memChallenges)(nil)

func newMemChallenges(max int) *memChallenges {
	return &memChallenges{max: max, m: make(map[[domain.ChallengeSize]byte]challengeEntry), perClient: make(map[string]int)}
}

func (s *memChallenges) Issue(_ context.Context, c []byte, client string, perClient int, now time.Time, ttl time.Duration) error {
	var k [domain.ChallengeSize]byte
	copy(k[:], c)
	s.mu.Lock()
	defer s.mu.Unlock()
	if client != "" && s.perClient[client] >= perClient {
		return fmt.Errorf("%d challenges outstanding for this client: %w", s.perClient[client], ports.ErrBusy)
	}
	if len(s.m) >= s.max {
		s.sweepLocked(now)
		if len(s.m) >= s.max {
			return fmt.Errorf("%d challenges outstanding: %w", len(s.m), ports.ErrBusy)
		}
	}
	s.m[k] = challengeEntry{expires: now.Add(ttl), client: client}
	if client != "" {
		s.perClient[client]++
	}
	return nil
}

func (s *memChallenges) Consume(_ context.Context, c []byte, now time.Time) error {
	var k [domain.ChallengeSize]byte
	copy(k[:], c)
	s.mu.Lock()
	e, ok := s.m[k]
	if ok {
		s.forgetLocked(k, e)
	}
	s.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		return ports.ErrChallengeInvalid
	}
	return nil
}

func (s *memChallenges) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
}

func (s *memChallenges) sweepLocked(now time.Time) {
	for k, e := range s.m {
		if !now.Before(e.expires) {
			s.forgetLocked(k, e)
		}
	}
}

func (s *memChallenges) forgetLocked(k [domain.ChallengeSize]byte, e challengeEntry) {
	delete(s.m, k)
	if e.client == "" {
		return
	}
	if s.perClient[e.client]--; s.perClient[e.client] <= 0 {
		delete(s.perClient, e.client)
	}
}
