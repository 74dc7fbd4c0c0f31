package ports

import (
	"context"
	"errors"
	"time"

	"github.com/chatx/chatx/domain"
)

// Ports that let several registry nodes serve one set of names (a shared
// store such as Redis, docs/scaling.md). A single node needs none of them:
// app.NewRegistry keeps challenges and presence events in its own memory.

// ErrResumeGap: the presence events after the position a watcher asked to
// resume from are no longer kept (trimmed, or another registry's
// positions); the watcher must take a fresh snapshot instead.
var ErrResumeGap = errors.New("presence events since that position are no longer kept")

// ChallengeStore keeps the registration challenges the registry issued
// until they are used or expire. Shared between nodes, a challenge issued
// by one node can be used at another — exactly once.
type ChallengeStore interface {
	// Issue records challenge c, issued to client ("" counts against no
	// client), valid for ttl from now. ErrBusy when client already holds
	// perClient unused challenges (or the store is full); nothing is
	// recorded then.
	Issue(ctx context.Context, c []byte, client string, perClient int, now time.Time, ttl time.Duration) error
	// Consume uses c up: nil for exactly one caller of an issued challenge
	// that has not expired at now, whichever node asks; ErrChallengeInvalid
	// for every other call.
	Consume(ctx context.Context, c []byte, now time.Time) error
}

// PresenceUpdate is a presence event with its position in the event log:
// ID is opaque to callers, ordered (see CompareEventIDs), and what an SSE
// client sends back as Last-Event-ID.
type PresenceUpdate struct {
	ID    string
	Event domain.PresenceEvent
	// More says that the next update of the same stream belongs to the
	// same change and was published with this one, at once (a live
	// session replaced: its offline, then the new session's online), so a
	// consumer may hold this update and pass both on together (the
	// registry's HTTP hub writes them to each presence stream in one
	// write). It is a hint about delivery only, never about meaning: each
	// update stays a change of its own, with its own ID. A consumer must
	// not wait for the next update beyond the end of what it was given:
	// the stream may close between the two (the watcher fell behind), and
	// a Since answer may end at an update with More set (its limit).
	// Updates that crossed a PresenceBus carry false: two nodes' changes
	// may interleave in the shared log, so a pair published through it
	// arrives as two separate updates, in order.
	More bool
}

// PresenceBus carries presence events between registry nodes: every node
// publishes the changes it makes and follows everyone's, in one order.
type PresenceBus interface {
	// Publish appends ev to the log and returns its ID.
	Publish(ctx context.Context, ev domain.PresenceEvent) (string, error)
	// Follow calls deliver for every event after the ID after ("" = those
	// published from now on), in order, until ctx is done (then it returns
	// nil) or the log can no longer be followed from there (ErrResumeGap:
	// events were trimmed while this follower was away). It retries lost
	// connections by itself, resuming from the last delivered ID; notify
	// (may be nil) hears of each failed attempt, for logs and metrics.
	Follow(ctx context.Context, after string, deliver func(PresenceUpdate), notify func(error)) error
	// Since returns the events after ID after, oldest first, at most
	// limit. ErrResumeGap when some of them are no longer kept.
	Since(ctx context.Context, after string, limit int) ([]PresenceUpdate, error)
	// Last is the ID of the newest event ("0-0" when there is none): a
	// follower that starts from it misses nothing published after the
	// call, however late it starts following.
	Last(ctx context.Context) (string, error)
}

// PresenceFeed is offered by a registry service whose events carry IDs
// (app.Registry): the HTTP adapter tags each SSE event with its ID and
// resumes a reconnecting client from its Last-Event-ID.
type PresenceFeed interface {
	// WatchUpdates streams every presence change from now on, with IDs (no
	// snapshot), until ctx is done or the watcher falls behind (the channel
	// closes; watch again and resync).
	WatchUpdates(ctx context.Context) (<-chan PresenceUpdate, error)
	// Since returns the changes after ID after, oldest first, at most
	// limit; ErrResumeGap when they are not all kept.
	Since(ctx context.Context, after string, limit int) ([]PresenceUpdate, error)
}

// SessionRemover is a presence store that removes a session only if it is
// still the given one, atomically — so when several nodes sweep, end or
// replace the same session, exactly one of them removes it and announces
// it offline.
type SessionRemover interface {
	// RemoveSession deletes name's presence if its TokenHash is tokenHash
	// and reports whether this call deleted it.
	RemoveSession(ctx context.Context, name domain.Username, tokenHash [32]byte) (bool, error)
}

// SweepLease is a presence store shared by several nodes that lets one of
// them at a time sweep expired sessions.
type SweepLease interface {
	// TakeSweep reports whether this node may sweep now; the lease lasts
	// ttl, so a node that dies hands the sweep on within ttl.
	TakeSweep(ctx context.Context, ttl time.Duration) (bool, error)
}

// CompareEventIDs orders two event IDs of the form "MS-SEQ" (decimal
// numbers, as Redis stream IDs and app.Registry's own are): -1, 0 or +1.
// A malformed ID sorts first.
func CompareEventIDs(a, b string) int {
	am, as, aok := splitEventID(a)
	bm, bs, bok := splitEventID(b)
	switch {
	case !aok && !bok:
		return 0
	case !aok:
		return -1
	case !bok:
		return 1
	case am != bm:
		if am < bm {
			return -1
		}
		return 1
	case as != bs:
		if as < bs {
			return -1
		}
		return 1
	}
	return 0
}

func splitEventID(id string) (ms, seq uint64, ok bool) {
	var part uint64
	digits, dash := 0, false
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9':
			if part > (1<<64-1-9)/10 {
				return 0, 0, false
			}
			part = part*10 + uint64(c-'0')
			digits++
		case c == '-' && !dash && digits > 0:
			ms, part, digits, dash = part, 0, 0, true
		default:
			return 0, 0, false
		}
	}
	if !dash || digits == 0 {
		return 0, 0, false
	}
	return ms, part, true
}
