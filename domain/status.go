package domain

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Availability is what a user tells contacts about being reachable.
type Availability uint8

// Availabilities. Their String() travels on the wire; never rename.
const (
	Available Availability = iota // "online"
	Away                          // idle for a while, or set by the user
	Busy                          // do not disturb
)

func (a Availability) String() string {
	switch a {
	case Away:
		return "away"
	case Busy:
		return "busy"
	}
	return "online"
}

// ParseAvailability is the inverse of Availability.String.
func ParseAvailability(s string) (Availability, error) {
	switch strings.ToLower(s) {
	case "online", "":
		return Available, nil
	case "away":
		return Away, nil
	case "busy":
		return Busy, nil
	}
	return Available, fmt.Errorf("%w: %q (online, away or busy)", ErrInvalidStatus, s)
}

// MaxStatusTextRunes bounds a status text.
const MaxStatusTextRunes = 140

// MaxStatusTextBytes bounds its encoding (140 runes of at most 4 bytes).
const MaxStatusTextBytes = 4 * MaxStatusTextRunes

// ErrInvalidStatus: an unknown availability or a status text too long or
// not UTF-8.
var ErrInvalidStatus = errors.New("invalid status")

// Status is a user's availability and optional text.
type Status struct {
	Availability Availability
	Text         string
}

// NewStatus checks a status: text of at most MaxStatusTextRunes valid
// UTF-8 characters. The text is shown escaped like all peer text.
func NewStatus(a Availability, text string) (Status, error) {
	if a > Busy {
		return Status{}, fmt.Errorf("%w: availability %d", ErrInvalidStatus, a)
	}
	if !utf8.ValidString(text) {
		return Status{}, fmt.Errorf("%w: text is not UTF-8", ErrInvalidStatus)
	}
	if n := utf8.RuneCountInString(text); n > MaxStatusTextRunes {
		return Status{}, fmt.Errorf("%w: text of %d characters (at most %d)", ErrInvalidStatus, n, MaxStatusTextRunes)
	}
	return Status{Availability: a, Text: text}, nil
}
