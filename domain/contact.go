package domain

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Relation is what the user decided about a peer whose key is pinned.
// Pinning happens on first use for anyone (a stranger's request pins its
// key too); being a contact is the user's choice.
type Relation uint8

// Relations. Their String() is stored; never rename.
const (
	RelationNone    Relation = iota // pinned only: a stranger (its messages are requests)
	RelationContact                 // added by the user, or a request the user accepted
	RelationBlocked                 // refused at the link handshake
)

func (r Relation) String() string {
	switch r {
	case RelationContact:
		return "contact"
	case RelationBlocked:
		return "blocked"
	}
	return "none"
}

// ParseRelation is the inverse of Relation.String.
func ParseRelation(s string) (Relation, error) {
	switch s {
	case "none":
		return RelationNone, nil
	case "contact":
		return RelationContact, nil
	case "blocked":
		return RelationBlocked, nil
	}
	return RelationNone, fmt.Errorf("unknown relation %q", s)
}

// MaxNicknameRunes bounds a local nickname.
const MaxNicknameRunes = 64

// ErrInvalidNickname: a nickname is too long or holds control characters.
var ErrInvalidNickname = errors.New("invalid nickname")

// ValidateNickname checks a local nickname ("" clears it): at most
// MaxNicknameRunes characters of valid UTF-8, no control or format
// characters (so it cannot reorder or hide the text around it).
func ValidateNickname(nick string) error {
	if !utf8.ValidString(nick) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidNickname)
	}
	if n := utf8.RuneCountInString(nick); n > MaxNicknameRunes {
		return fmt.Errorf("%w: %d characters (at most %d)", ErrInvalidNickname, n, MaxNicknameRunes)
	}
	if strings.IndexFunc(nick, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
		return fmt.Errorf("%w: control characters", ErrInvalidNickname)
	}
	if strings.TrimSpace(nick) != nick {
		return fmt.Errorf("%w: leading or trailing space", ErrInvalidNickname)
	}
	return nil
}

// Contact is a peer whose key this profile has pinned (trust on first use),
// whether the user has verified it by comparing safety numbers, and what
// the user decided about it (Relation, a local Nickname).
type Contact struct {
	Identity Identity
	Verified bool
	PinnedAt time.Time
	Relation Relation
	Nickname string
}

// IsContact reports whether the user added or accepted the peer.
func (c Contact) IsContact() bool { return c.Relation == RelationContact }

// IsBlocked reports whether the peer is refused at the handshake.
func (c Contact) IsBlocked() bool { return c.Relation == RelationBlocked }

// CheckKey compares a presented key with the pinned one. A different key is a
// *KeyChangedError: sending stays blocked until the user accepts the new key.
func (c Contact) CheckKey(presented Identity) error {
	if c.Identity.SameKey(presented.PublicKey()) {
		return nil
	}
	return &KeyChangedError{Name: c.Identity.Name(), Old: c.Identity.Fingerprint(), New: presented.Fingerprint()}
}
