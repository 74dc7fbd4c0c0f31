package domain

import (
	"errors"
	"fmt"
)

// Sentinel errors of the domain. Adapters wrap them; callers test with errors.Is.
var (
	ErrInvalidUsername   = errors.New("invalid username")
	ErrNameTaken         = errors.New("name is bound to another key")
	ErrUnknownPeer       = errors.New("unknown peer")
	ErrPeerOffline       = errors.New("peer is offline")
	ErrEmptyMessage      = errors.New("message is empty")
	ErrMessageTooLong    = errors.New("message is longer than 64 KiB")
	ErrInvalidUTF8       = errors.New("message is not valid UTF-8")
	ErrInvalidTransition = errors.New("invalid state transition")
	ErrInvalidKey        = errors.New("invalid public key")
	ErrNotFound          = errors.New("not found")
	ErrNoIdentity        = errors.New("no identity in this profile")
	ErrBadSignature      = errors.New("signature does not verify")
	ErrUnsafePath        = errors.New("unsafe path")
	ErrTooLarge          = errors.New("too large")
	ErrBlocked           = errors.New("peer is blocked")
	// ErrOutdatedProof: a registry request was signed in the retired v1
	// layout ("chatx-registry-v1"); the client must sign v2.
	ErrOutdatedProof = errors.New("proof signed as chatx-registry-v1; the registry accepts only chatx-registry-v2 (upgrade the client)")
)

// KeyChangedError reports that a known name now presents another key. Sending
// to that name stays blocked until the user accepts the new key.
type KeyChangedError struct {
	Name Username
	Old  Fingerprint
	New  Fingerprint
}

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("the key of %s changed from %s to %s: verify it before sending", e.Name, e.Old.Short(), e.New.Short())
}

// TransitionError says which move a state machine refused.
type TransitionError struct {
	What     string
	From, To string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s: cannot go from %s to %s", e.What, e.From, e.To)
}

func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }
