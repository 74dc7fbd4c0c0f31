// Package registry is the registry over HTTPS: the server that `chatx
// registry` runs in front of the registry service (app.Registry), its
// durable account store on disk, and the client that implements
// ports.Directory for the chat client (register, heartbeat, live presence
// stream, re-registration after a registry restart, certificate pinning).
// The protocol is described in docs/registry-api.md.
//
// The package must not decide who may hold a name or when a session ends:
// that is the service's job behind ports.RegistryService. It never carries
// message content, and it never logs tokens, keys or signatures.
package registry
