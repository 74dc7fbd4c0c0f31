// Package relay is the TURN server (RFC 8656, github.com/pion/turn/v4)
// embedded in `chatx registry`: the last-resort path between two peers that
// can reach each other neither directly nor by hole punching.
//
// It listens on UDP and TCP on one port (default 3478) and authenticates
// with the TURN REST convention (internal/turnrest, coturn's
// use-auth-secret) under a random secret made at start and held only in
// memory; the registry hands credentials made with it to registered
// sessions. Every allocation is bound by a per-user quota, a total cap and
// a token-bucket rate per direction, and relays only to and from the peer
// addresses its owner permitted (TURN's CreatePermission) — never to
// multicast or unspecified addresses, nor to loopback unless the relay
// itself is on loopback, nor back into its own TURN port. It sees only
// ciphertext: peers run QUIC with TLS 1.3 between their identity keys over
// the allocation. docs/relay.md is the reference.
//
// The package must not learn who talks to whom beyond what TURN needs (it
// keeps no log of peers at info level) and must not hand out credentials
// itself: that is the registry's, which knows who is registered.
package relay
