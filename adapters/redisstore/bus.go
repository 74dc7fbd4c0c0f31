package redisstore

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bus is the presence event log shared by the registry nodes: a Redis
// Stream, appended with XADD (trimmed to about Config.StreamMaxLen
// entries) and followed with XREAD BLOCK. Unlike pub/sub, a node that
// loses Redis for a while reads on from its last ID when it is back, and a
// client's Last-Event-ID is a stream ID every node understands.
type Bus struct {
	s *Store
	// block is how long one XREAD waits for news before it is repeated
	// (and how long a follower may take to notice that its ctx ended:
	// go-redis does not interrupt a blocked read on cancellation).
	block time.Duration
}

var _ ports.PresenceBus = (*Bus)(nil)

// NewBus is the presence bus on s.
func NewBus(s *Store) *Bus { return &Bus{s: s, block: time.Second} }

func (b *Bus) stream() string { return b.s.key("presence-events") }

// eventRecord is a domain.PresenceEvent as logged: the peer with every
// exported field (new ones flow through), the identity as name and key.
type eventRecord struct {
	IDName string `json:"id_name"`
	IDKey  []byte `json:"id_key"`
	domain.Peer
}

const eventField = "ev"

// Publish appends ev to the stream.
func (b *Bus) Publish(ctx context.Context, ev domain.PresenceEvent) (string, error) {
	data, err := json.Marshal(eventRecord{IDName: ev.Peer.Name().String(), IDKey: ev.Peer.Identity.PublicKey(), Peer: ev.Peer})
	if err != nil {
		return "", fmt.Errorf("publish presence: %w", err)
	}
	id, err := b.s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: b.stream(), MaxLen: b.s.maxLen, Approx: true, Values: []any{eventField, data}}).Result()
	if err != nil {
		return "", fmt.Errorf("publish presence: redis: %w", err)
	}
	return id, nil
}

func decodeEvent(m redis.XMessage) (ports.PresenceUpdate, error) {
	raw, ok := m.Values[eventField].(string)
	if !ok {
		return ports.PresenceUpdate{}, fmt.Errorf("event %s: no %q field", m.ID, eventField)
	}
	var rec eventRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return ports.PresenceUpdate{}, fmt.Errorf("event %s: %w", m.ID, err)
	}
	name, err := domain.ParseUsername(rec.IDName)
	if err != nil {
		return ports.PresenceUpdate{}, fmt.Errorf("event %s: %w", m.ID, err)
	}
	id, err := domain.NewIdentity(name, ed25519.PublicKey(rec.IDKey))
	if err != nil {
		return ports.PresenceUpdate{}, fmt.Errorf("event %s: %w", m.ID, err)
	}
	rec.Peer.Identity = id
	return ports.PresenceUpdate{ID: m.ID, Event: domain.PresenceEvent{Peer: rec.Peer}}, nil
}

// Follow reads the stream after ID after ("" = its current end) until ctx
// is done, reconnecting with backoff and resuming from the last delivered
// ID; ErrResumeGap when entries after that ID were trimmed meanwhile.
func (b *Bus) Follow(ctx context.Context, after string, deliver func(ports.PresenceUpdate), notify func(error)) error {
	if notify == nil {
		notify = func(error) {}
	}
	backoff := 100 * time.Millisecond
	fail := func(err error) bool {
		notify(err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
		return true
	}
	for after == "" {
		last, err := b.Last(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			if !fail(err) {
				return nil
			}
		default:
			after = last
		}
	}
	lost := false // the last read failed: check for a gap before reading on
	for ctx.Err() == nil {
		if lost {
			if err := b.checkKept(ctx, after); errors.Is(err, ports.ErrResumeGap) {
				return err
			} else if err != nil {
				if !fail(err) {
					return nil
				}
				continue
			}
			lost = false
		}
		res, err := b.s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{b.stream(), after}, Count: 512, Block: b.block}).Result()
		if isNil(err) {
			continue // nothing new within block
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			lost = true
			if !fail(fmt.Errorf("presence bus: read: %w", err)) {
				return nil
			}
			continue
		}
		backoff = 100 * time.Millisecond
		for _, st := range res {
			for _, m := range st.Messages {
				after = m.ID
				u, err := decodeEvent(m)
				if err != nil {
					b.s.log.Warn("presence bus: skipping an unreadable event", "err", err)
					continue
				}
				deliver(u)
			}
		}
	}
	return nil
}

// Last is the ID of the stream's newest entry, "0-0" when it is empty.
func (b *Bus) Last(ctx context.Context) (string, error) {
	last, err := b.s.rdb.XRevRangeN(ctx, b.stream(), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("presence bus: find the end: %w", err)
	}
	if len(last) == 0 {
		return "0-0", nil
	}
	return last[0].ID, nil
}

// checkKept says whether every entry after ID after is still in the
// stream: not when Redis trimmed one newer than after (XINFO STREAM's
// max-deleted-entry-id), nor when after lies beyond the stream's last ID
// (an ID of another stream, or one lost in a Redis restart without AOF).
func (b *Bus) checkKept(ctx context.Context, after string) error {
	info, err := b.s.rdb.XInfoStream(ctx, b.stream()).Result()
	if err != nil {
		if isNoStream(err) {
			if after == "0-0" {
				return nil
			}
			return fmt.Errorf("resume after %s: stream gone: %w", after, ports.ErrResumeGap)
		}
		return fmt.Errorf("presence bus: stream info: %w", err)
	}
	// Trimming (MAXLEN) moves the first entry on; an entry deleted by
	// XDEL shows in max-deleted-entry-id. Either past after is a gap
	// (conservatively so when only after itself was trimmed).
	if info.Length > 0 && ports.CompareEventIDs(info.FirstEntry.ID, after) > 0 {
		return fmt.Errorf("resume after %s: trimmed up to %s: %w", after, info.FirstEntry.ID, ports.ErrResumeGap)
	}
	if ports.CompareEventIDs(info.MaxDeletedEntryID, after) > 0 {
		return fmt.Errorf("resume after %s: trimmed up to %s: %w", after, info.MaxDeletedEntryID, ports.ErrResumeGap)
	}
	if ports.CompareEventIDs(after, info.LastGeneratedID) > 0 {
		return fmt.Errorf("resume after %s: beyond the stream's end %s: %w", after, info.LastGeneratedID, ports.ErrResumeGap)
	}
	return nil
}

func isNoStream(err error) bool {
	return err != nil && (isNil(err) || strings.Contains(strings.ToLower(err.Error()), "no such key"))
}

// Since returns the events after ID after, oldest first, at most limit
// (0: 1000).
func (b *Bus) Since(ctx context.Context, after string, limit int) ([]ports.PresenceUpdate, error) {
	if ports.CompareEventIDs(after, "0-0") < 0 {
		return nil, fmt.Errorf("resume after %.40q: not a stream ID: %w", after, ports.ErrResumeGap)
	}
	if err := b.checkKept(ctx, after); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	msgs, err := b.s.rdb.XRangeN(ctx, b.stream(), "("+after, "+", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("presence since %s: redis: %w", after, err)
	}
	out := make([]ports.PresenceUpdate, 0, len(msgs))
	for _, m := range msgs {
		u, err := decodeEvent(m)
		if err != nil {
			b.s.log.Warn("presence bus: skipping an unreadable event", "err", err)
			continue
		}
		out = append(out, u)
	}
	return out, nil
}
