package redisstore

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Mailbox parks sealed mail in Redis. Per recipient (hash tag {to}, one
// Cluster slot per recipient): a sorted set of mail IDs by deposit time
// (the order List returns), one by expiry (the quota counts only unexpired
// mail), and hashes of records and sizes; across recipients, a sorted set
// by expiry that Expire works through — the node whose ZREM takes an entry
// off it is the one that deletes and counts it, so two nodes expiring at
// once count each mail once.
type Mailbox struct{ s *Store }

var _ ports.MailboxStore = (*Mailbox)(nil)

// NewMailbox is the mailbox store on s.
func NewMailbox(s *Store) *Mailbox { return &Mailbox{s: s} }

type mailKeys struct{ dep, exp, data, size string }

func (mb *Mailbox) keys(to domain.Username) mailKeys { return mb.keysFor(to.Key()) }

// keysFor takes the name's comparison key (domain.Username.Key).
func (mb *Mailbox) keysFor(nameKey string) mailKeys {
	tag := "{" + nameKey + "}"
	return mailKeys{
		dep:  mb.s.key("mbox", tag, "dep"),
		exp:  mb.s.key("mbox", tag, "exp"),
		data: mb.s.key("mbox", tag, "data"),
		size: mb.s.key("mbox", tag, "size"),
	}
}

func (mb *Mailbox) dueKey() string { return mb.s.key("mbox-due") }

type mailRecord struct {
	ID        string    `json:"id"`
	To        string    `json:"to"`
	Blob      []byte    `json:"blob"`
	Deposited time.Time `json:"deposited"`
	Expires   time.Time `json:"expires"`
}

// putScript parks one mail when the recipient's unexpired mail (score of
// KEYS[2] above ARGV[1]) plus this one stays within ARGV[6] mails and
// ARGV[7] bytes: 1 parked, 0 full, -1 the ID exists already.
// ARGV: now ms, id, deposited ms, expires ms, record, size, max count, max bytes.
var putScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return -1 end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
if #live + 1 > tonumber(ARGV[7]) then return 0 end
local total = tonumber(ARGV[6])
if #live > 0 then
  local sizes = redis.call('HMGET', KEYS[4], unpack(live))
  for _, s in ipairs(sizes) do if s then total = total + tonumber(s) end end
end
if total > tonumber(ARGV[8]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[6])
return 1`)

// Put parks m unless it would take the recipient over q.
func (mb *Mailbox) Put(ctx context.Context, m ports.Mail, q ports.MailQuota) error {
	id := hex.EncodeToString(m.ID[:])
	rec, err := json.Marshal(mailRecord{ID: id, To: m.To.String(), Blob: m.Blob, Deposited: m.Deposited.UTC(), Expires: m.Expires.UTC()})
	if err != nil {
		return fmt.Errorf("park mail for %s: %w", m.To, err)
	}
	k := mb.keys(m.To)
	n, err := putScript.Run(ctx, mb.s.rdb, []string{k.dep, k.exp, k.data, k.size},
		m.Deposited.UnixMilli(), id, m.Deposited.UnixMicro(), m.Expires.UnixMilli(), rec, len(m.Blob), q.Count, q.Bytes,
	).Int()
	// ARGV[1] is "now" for the quota: mail deposited now counts what has
	// not expired by its deposit time.
	if err != nil {
		return fmt.Errorf("park mail for %s: redis: %w", m.To, err)
	}
	switch n {
	case 0:
		return fmt.Errorf("park mail for %s: %w", m.To, ports.ErrMailboxFull)
	case -1:
		return fmt.Errorf("park mail for %s: mail ID %s exists already", m.To, id)
	}
	if err := mb.s.rdb.ZAdd(ctx, mb.dueKey(), redis.Z{Score: float64(m.Expires.UnixMilli()), Member: m.To.Key() + "/" + id}).Err(); err != nil {
		// Parked but not indexed for Expire: List still hides it once
		// expired, and Delete removes it.
		return fmt.Errorf("park mail for %s: index expiry: redis: %w", m.To, err)
	}
	return nil
}

// List returns to's unexpired mail, oldest first, at most limit.
func (mb *Mailbox) List(ctx context.Context, to domain.Username, now time.Time, limit int) ([]ports.Mail, error) {
	k := mb.keys(to)
	ids, err := mb.s.rdb.ZRange(ctx, k.dep, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list mail of %s: redis: %w", to, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := mb.s.rdb.HMGet(ctx, k.data, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("list mail of %s: redis: %w", to, err)
	}
	var out []ports.Mail
	for _, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // deleted meanwhile
		}
		var rec mailRecord
		if err := json.Unmarshal([]byte(s), &rec); err != nil {
			return nil, fmt.Errorf("list mail of %s: stored record: %w", to, err)
		}
		if !now.Before(rec.Expires) {
			continue
		}
		m := ports.Mail{To: to, Blob: rec.Blob, Deposited: rec.Deposited, Expires: rec.Expires}
		if b, err := hex.DecodeString(rec.ID); err == nil && len(b) == len(m.ID) {
			copy(m.ID[:], b)
		}
		out = append(out, m)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// Delete removes to's mail with the given IDs.
func (mb *Mailbox) Delete(ctx context.Context, to domain.Username, ids []ports.MailID) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := mb.deleteMail(ctx, to.Key(), ids); err != nil {
		return fmt.Errorf("delete mail of %s: %w", to, err)
	}
	return nil
}

// deleteMail removes the IDs from the box of the name whose comparison key
// is nameKey and says which were there.
func (mb *Mailbox) deleteMail(ctx context.Context, nameKey string, ids []ports.MailID) ([]bool, error) {
	k := mb.keysFor(nameKey)
	hexIDs := make([]string, len(ids))
	due := make([]any, len(ids))
	for i, id := range ids {
		hexIDs[i] = hex.EncodeToString(id[:])
		due[i] = nameKey + "/" + hexIDs[i]
	}
	var dels []*redis.IntCmd
	_, err := mb.s.rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		for _, id := range hexIDs {
			dels = append(dels, tx.HDel(ctx, k.data, id))
		}
		members := make([]any, len(hexIDs))
		for i, id := range hexIDs {
			members[i] = id
		}
		tx.ZRem(ctx, k.dep, members...)
		tx.ZRem(ctx, k.exp, members...)
		tx.HDel(ctx, k.size, hexIDs...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := mb.s.rdb.ZRem(ctx, mb.dueKey(), due...).Err(); err != nil {
		mb.s.log.Warn("unindex deleted mail", "err", err)
	}
	had := make([]bool, len(dels))
	for i, d := range dels {
		had[i] = d.Val() == 1
	}
	return had, nil
}

// Expire removes every mail expired at now and reports how many.
func (mb *Mailbox) Expire(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		due, err := mb.s.rdb.ZRangeByScore(ctx, mb.dueKey(), &redis.ZRangeBy{Min: "-inf", Max: fmt.Sprint(now.UnixMilli()), Count: 500}).Result()
		if err != nil {
			return total, fmt.Errorf("expire mail: redis: %w", err)
		}
		if len(due) == 0 {
			return total, nil
		}
		for _, member := range due {
			// Whoever takes the entry off the index expires the mail.
			n, err := mb.s.rdb.ZRem(ctx, mb.dueKey(), member).Result()
			if err != nil {
				return total, fmt.Errorf("expire mail: redis: %w", err)
			}
			if n == 0 {
				continue
			}
			nameKey, idHex, ok := strings.Cut(member, "/")
			b, err := hex.DecodeString(idHex)
			var id ports.MailID
			if !ok || err != nil || len(b) != len(id) {
				continue
			}
			copy(id[:], b)
			had, err := mb.deleteMail(ctx, nameKey, []ports.MailID{id})
			if err != nil {
				return total, fmt.Errorf("expire mail: %w", err)
			}
			if had[0] {
				total++
			}
		}
	}
}

// Prekeys keeps each user's current mailbox key in Redis, one key per
// name.
type Prekeys struct{ s *Store }

var _ ports.PrekeyStore = (*Prekeys)(nil)

// NewPrekeys is the prekey store on s.
func NewPrekeys(s *Store) *Prekeys { return &Prekeys{s: s} }

type prekeyRecord struct {
	IDName string `json:"id_name"`
	ports.SignedPrekey
}

// PutPrekey stores k as its name's current key.
func (p *Prekeys) PutPrekey(ctx context.Context, k ports.SignedPrekey) error {
	b, err := json.Marshal(prekeyRecord{IDName: k.Name.String(), SignedPrekey: k})
	if err != nil {
		return fmt.Errorf("store mailbox key of %s: %w", k.Name, err)
	}
	if err := p.s.rdb.Set(ctx, p.s.key("prekey", k.Name.Key()), b, 0).Err(); err != nil {
		return fmt.Errorf("store mailbox key of %s: redis: %w", k.Name, err)
	}
	return nil
}

// GetPrekey returns name's current key.
func (p *Prekeys) GetPrekey(ctx context.Context, name domain.Username) (ports.SignedPrekey, error) {
	b, err := p.s.rdb.Get(ctx, p.s.key("prekey", name.Key())).Bytes()
	if isNil(err) {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: %w", name, domain.ErrNotFound)
	}
	if err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: redis: %w", name, err)
	}
	var rec prekeyRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: stored record: %w", name, err)
	}
	n, err := domain.ParseUsername(rec.IDName)
	if err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: stored name: %w", name, err)
	}
	rec.SignedPrekey.Name = n
	return rec.SignedPrekey, nil
}
