package domain

import "time"

// Contact is a peer whose key this profile has pinned (trust on first use),
// and whether the user has verified it by comparing safety numbers.
type Contact struct {
	Identity Identity
	Verified bool
	PinnedAt time.Time
}

// CheckKey compares a presented key with the pinned one. A different key is a
// *KeyChangedError: sending stays blocked until the user accepts the new key.
func (c Contact) CheckKey(presented Identity) error {
	if c.Identity.SameKey(presented.PublicKey()) {
		return nil
	}
	return &KeyChangedError{Name: c.Identity.Name(), Old: c.Identity.Fingerprint(), New: presented.Fingerprint()}
}
