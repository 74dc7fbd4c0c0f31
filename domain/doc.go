// Package domain holds what ChatX is: usernames, identities and their
// fingerprints, messages and their delivery states, file transfers and their
// state machine, and the rules that keep peer-supplied names safe.
//
// It imports only the standard library and golang.org/x/text (for Unicode
// normalisation). It knows nothing of sockets, storage, JSON or terminals:
// adapters map these types to their own wire and storage structs.
package domain
