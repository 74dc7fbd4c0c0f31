package redisstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatx/chatx/ports"
)

// Challenges keeps registration challenges in Redis with their TTL: a
// challenge one node issued is used up at any node with GETDEL, so exactly
// one use succeeds. Each client's outstanding challenges are counted in a
// key of its own that expires with them.
type Challenges struct{ s *Store }

var _ ports.ChallengeStore = (*Challenges)(nil)

// NewChallenges is the challenge store on s.
func NewChallenges(s *Store) *Challenges { return &Challenges{s: s} }

// issueScript counts the challenge against its client (KEYS[2], unless
// ARGV[3] is "") and stores it (KEYS[1]) only when the client is under
// its cap ARGV[4]: 1 stored, 0 busy.
var issueScript = redis.NewScript(`
if ARGV[3] ~= "" then
  local n = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  if n > tonumber(ARGV[4]) then
    redis.call('DECR', KEYS[2])
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// uncountScript gives a client's slot back, unless its counter expired.
var uncountScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0`)

// Issue stores c for ttl, counted against client.
func (c *Challenges) Issue(ctx context.Context, ch []byte, client string, perClient int, now time.Time, ttl time.Duration) error {
	// The value is the expiry, checked on use too: Redis expires keys by
	// its own clock, the registry decides by its own.
	val := fmt.Sprintf("%d|%s", now.Add(ttl).UnixMilli(), client)
	ok, err := issueScript.Run(ctx, c.s.rdb, []string{c.key(ch), c.s.key("chc", client)},
		val, ttl.Milliseconds(), client, perClient).Int()
	if err != nil {
		return fmt.Errorf("issue challenge: redis: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("%d challenges outstanding for this client: %w", perClient, ports.ErrBusy)
	}
	return nil
}

func (c *Challenges) key(ch []byte) string { return c.s.key("ch", hex.EncodeToString(ch)) }

// Consume uses ch up with GETDEL.
func (c *Challenges) Consume(ctx context.Context, ch []byte, now time.Time) error {
	v, err := c.s.rdb.GetDel(ctx, c.key(ch)).Result()
	if isNil(err) {
		return ports.ErrChallengeInvalid
	}
	if err != nil {
		return fmt.Errorf("use challenge: redis: %w", err)
	}
	var expires int64
	var client string
	if i := strings.IndexByte(v, '|'); i >= 0 {
		_, _ = fmt.Sscanf(v[:i], "%d", &expires)
		client = v[i+1:]
	}
	if client != "" {
		if err := uncountScript.Run(ctx, c.s.rdb, []string{c.s.key("chc", client)}).Err(); err != nil {
			c.s.log.Warn("uncount challenge", "err", err)
		}
	}
	if now.UnixMilli() >= expires {
		return ports.ErrChallengeInvalid
	}
	return nil
}
