// Package redisstore keeps the registry's shared state in Redis, so that
// several `chatx registry` nodes serve one set of names
// (docs/scaling.md): accounts (bound with SET NX, so a name is bound once
// whichever node asks), single-use challenges (GETDEL), expiring sessions
// (removed by a script that only the winning node's call completes), the
// mailbox and mailbox keys, and the presence event log as a Redis Stream
// (XADD with MAXLEN trimming, followed with XREAD BLOCK) that a node
// resumes from its last ID after losing Redis.
//
// It implements ports only; it knows nothing of HTTP or of the registry's
// rules (app.Registry decides, this package stores).
package redisstore
