// Package chatx composes ChatX: wire.go declares the Wire injectors that
// assemble the real client, the registry server and the in-memory client from
// the adapters' provider sets, and wire_gen.go is their generated code. Only
// this package and cmd/ know every adapter.
package chatx
