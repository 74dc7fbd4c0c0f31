package redisstore

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Presence keeps online sessions in two Redis hashes by name: the whole
// ports.Presence as JSON, and beside it the session's token hash, so that
// removing a session only if it is still the same one is one atomic
// script (RemoveSession) — of several nodes sweeping or ending one session,
// exactly one removes it and announces it offline. Both hashes share the
// hash tag {presence}, so the script stays on one Redis Cluster slot.
type Presence struct {
	s    *Store
	node string
}

var (
	_ ports.PresenceStore  = (*Presence)(nil)
	_ ports.SessionRemover = (*Presence)(nil)
	_ ports.SweepLease     = (*Presence)(nil)
)

// NewPresence is the presence store on s.
func NewPresence(s *Store) *Presence {
	host, _ := os.Hostname()
	return &Presence{s: s, node: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())}
}

func (p *Presence) dataKey() string { return p.s.key("{presence}", "data") }
func (p *Presence) tokKey() string  { return p.s.key("{presence}", "tok") }

// presenceRecord is ports.Presence as stored: every exported field of it
// (so fields added to ports.Presence are kept without a change here), with
// the identity, whose fields are unexported, as name and key beside it.
type presenceRecord struct {
	IDName string `json:"id_name"`
	IDKey  []byte `json:"id_key"`
	ports.Presence
}

func encodePresence(p ports.Presence) ([]byte, error) {
	return json.Marshal(presenceRecord{IDName: p.Identity.Name().String(), IDKey: p.Identity.PublicKey(), Presence: p})
}

func decodePresence(b []byte) (ports.Presence, error) {
	var rec presenceRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return ports.Presence{}, fmt.Errorf("stored presence: %w", err)
	}
	name, err := domain.ParseUsername(rec.IDName)
	if err != nil {
		return ports.Presence{}, fmt.Errorf("stored presence: %w", err)
	}
	id, err := domain.NewIdentity(name, ed25519.PublicKey(rec.IDKey))
	if err != nil {
		return ports.Presence{}, fmt.Errorf("stored presence: %w", err)
	}
	rec.Presence.Identity = id
	return rec.Presence, nil
}

// Put inserts or replaces the presence of p's name.
func (p *Presence) Put(ctx context.Context, pr ports.Presence) error {
	b, err := encodePresence(pr)
	if err != nil {
		return fmt.Errorf("presence %s: %w", pr.Identity.Name(), err)
	}
	k := pr.Identity.Name().Key()
	_, err = p.s.rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.HSet(ctx, p.dataKey(), k, b)
		tx.HSet(ctx, p.tokKey(), k, hex.EncodeToString(pr.TokenHash[:]))
		return nil
	})
	if err != nil {
		return fmt.Errorf("presence %s: redis: %w", pr.Identity.Name(), err)
	}
	return nil
}

// Get returns the presence of name.
func (p *Presence) Get(ctx context.Context, name domain.Username) (ports.Presence, error) {
	b, err := p.s.rdb.HGet(ctx, p.dataKey(), name.Key()).Bytes()
	if isNil(err) {
		return ports.Presence{}, fmt.Errorf("presence %s: %w", name, domain.ErrNotFound)
	}
	if err != nil {
		return ports.Presence{}, fmt.Errorf("presence %s: redis: %w", name, err)
	}
	return decodePresence(b)
}

// Delete removes name's presence.
func (p *Presence) Delete(ctx context.Context, name domain.Username) error {
	_, err := p.s.rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.HDel(ctx, p.dataKey(), name.Key())
		tx.HDel(ctx, p.tokKey(), name.Key())
		return nil
	})
	if err != nil {
		return fmt.Errorf("presence %s: redis: %w", name, err)
	}
	return nil
}

// removeScript deletes field ARGV[1] of both hashes when its token hash is
// ARGV[2]: 1 removed, 0 not (absent or another session).
var removeScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0`)

// RemoveSession deletes name's presence if it is the session tokenHash.
func (p *Presence) RemoveSession(ctx context.Context, name domain.Username, tokenHash [32]byte) (bool, error) {
	n, err := removeScript.Run(ctx, p.s.rdb, []string{p.dataKey(), p.tokKey()}, name.Key(), hex.EncodeToString(tokenHash[:])).Int()
	if err != nil {
		return false, fmt.Errorf("remove presence %s: redis: %w", name, err)
	}
	return n == 1, nil
}

// List returns every presence (HSCAN in batches, so a large table does not
// block Redis).
func (p *Presence) List(ctx context.Context) ([]ports.Presence, error) {
	var out []ports.Presence
	var cursor uint64
	for {
		kv, next, err := p.s.rdb.HScan(ctx, p.dataKey(), cursor, "", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("list presence: redis: %w", err)
		}
		for i := 1; i < len(kv); i += 2 {
			pr, err := decodePresence([]byte(kv[i]))
			if err != nil {
				p.s.log.Warn("skipping unreadable presence", "name", kv[i-1], "err", err)
				continue
			}
			out = append(out, pr)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	// HSCAN may return an entry twice; keep one per name.
	seen := make(map[string]bool, len(out))
	uniq := out[:0]
	for _, pr := range out {
		if k := pr.Identity.Name().Key(); !seen[k] {
			seen[k] = true
			uniq = append(uniq, pr)
		}
	}
	return uniq, nil
}

// TakeSweep lets one node at a time sweep: the lease is a key set with NX
// for ttl (a little less, so the holder's next round finds it free).
func (p *Presence) TakeSweep(ctx context.Context, ttl time.Duration) (bool, error) {
	ok, err := p.s.rdb.SetNX(ctx, p.s.key("sweep"), p.node, max(ttl*9/10, 10*time.Millisecond)).Result()
	if err != nil {
		return false, fmt.Errorf("sweep lease: redis: %w", err)
	}
	return ok, nil
}

// Online is the number of sessions stored (HLEN), for metrics.
func (p *Presence) Online(ctx context.Context) (int, error) {
	n, err := p.s.rdb.HLen(ctx, p.dataKey()).Result()
	return int(n), err
}
