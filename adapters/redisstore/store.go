package redisstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// URL names the Redis server: redis://HOST:PORT/DB, or rediss:// for TLS
// (docs/scaling.md). A password in the URL is accepted but
// Config.PasswordFile keeps it out of process listings.
type URL string

// PasswordFile holds the Redis password (AUTH), one line.
type PasswordFile string

// Config configures the connection. Zero values take defaults.
type Config struct {
	URL          URL
	PasswordFile PasswordFile
	// Prefix starts every key ("chatx:"), so one Redis can hold several
	// registries or other data.
	Prefix string
	// StreamMaxLen bounds the presence event log (approximately, MAXLEN ~;
	// default 100,000 events): a client away longer than that many events
	// resyncs from a snapshot.
	StreamMaxLen int64
	// DialTimeout bounds connecting (2 s); commands time out after
	// ReadTimeout (3 s) so a dead Redis fails requests instead of hanging.
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// PoolSize is the connection pool per node (default 10 per CPU).
	PoolSize int
}

// Store is a connection to Redis shared by the stores of this package.
type Store struct {
	rdb    *redis.Client
	prefix string
	maxLen int64
	log    *slog.Logger
	ops    atomic.Int64
}

// Open connects to cfg.URL and checks the connection with PING (retrying
// for up to ten seconds). The cleanup closes the pool.
func Open(cfg Config, logger *slog.Logger) (*Store, func(), error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	u := string(cfg.URL)
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		return nil, nil, fmt.Errorf("redis store: %q: want redis://HOST:PORT/DB or rediss://", redact(u))
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		return nil, nil, fmt.Errorf("redis store %s: %w", redact(u), err)
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(string(cfg.PasswordFile))
		if err != nil {
			return nil, nil, fmt.Errorf("redis store: password file: %w", err)
		}
		opt.Password = string(bytes.TrimSpace(b))
	}
	if opt.TLSConfig != nil && opt.TLSConfig.MinVersion < tls.VersionTLS12 {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	opt.DialTimeout = orDefault(cfg.DialTimeout, 2*time.Second)
	opt.ReadTimeout = orDefault(cfg.ReadTimeout, 3*time.Second)
	opt.WriteTimeout = opt.ReadTimeout
	opt.ContextTimeoutEnabled = true
	if cfg.PoolSize > 0 {
		opt.PoolSize = cfg.PoolSize
	}
	quietOnce.Do(func() { redis.SetLogger(debugLogger{}) })
	s := &Store{rdb: redis.NewClient(opt), prefix: cfg.Prefix, maxLen: cfg.StreamMaxLen, log: logger}
	if s.prefix == "" {
		s.prefix = "chatx:"
	}
	if s.maxLen <= 0 {
		s.maxLen = 100_000
	}
	s.rdb.AddHook(opsCounter{&s.ops})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err = s.rdb.Ping(ctx).Err()
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		_ = s.rdb.Close()
		return nil, nil, fmt.Errorf("redis store %s: ping: %w", opt.Addr, err)
	}
	logger.Info("registry state in redis", "addr", opt.Addr, "db", opt.DB, "tls", opt.TLSConfig != nil)
	return s, func() { _ = s.rdb.Close() }, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// redact drops a password from a URL for messages.
func redact(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "(unparsable URL)"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "***@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

// Ops is how many Redis commands this process has sent (pipelined ones
// counted one by one), for metrics and benchmarks.
func (s *Store) Ops() int64 { return s.ops.Load() }

func (s *Store) key(parts ...string) string { return s.prefix + strings.Join(parts, ":") }

// opsCounter counts commands.
type opsCounter struct{ n *atomic.Int64 }

func (h opsCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h opsCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h opsCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := int64(0)
		for _, c := range cmds {
			if name := c.Name(); name != "multi" && name != "exec" {
				n++
			}
		}
		h.n.Add(n)
		return next(ctx, cmds)
	}
}

// quietOnce routes go-redis's own log lines (one per failed dial, which
// would flood the log while Redis is down) to slog's default logger at
// debug level; this package logs the failures that matter itself, rate
// limited. go-redis has one logger per process, hence once.
var quietOnce sync.Once

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

var errNil = redis.Nil

func isNil(err error) bool { return errors.Is(err, errNil) }
