package domain

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Username limits. After normalisation a name has 3 to 32 characters, each
// one of a-z, 0-9, '_', '-' and '.', and it starts with a letter or digit.
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
)

// Username is a normalised user name. Its zero value is not a valid name.
//
// Two names that a person could mistake for each other have the same Key:
// NFKC and case folding first (ALICE, ａｌｉｃｅ → alice), then Cyrillic and
// Greek letters that look like Latin ones become those Latin letters (Cyrillic
// а → a), and finally the look-alike digits and letters 1/i/l and 0/o fold
// together. The registry binds Keys, so "alice", "ALICE", "аlice" and "a1ice"
// are all one account.
type Username struct {
	name string // normalised, shown to people
	key  string // confusable skeleton, compared
}

var folder = cases.Fold()

// homoglyphs maps letters that render like a Latin letter to that letter. It
// covers the Cyrillic and Greek look-alikes of the allowed Latin set (after
// case folding, so only lower-case forms are listed).
var homoglyphs = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'һ': 'h', 'і': 'i', 'ї': 'i', 'ј': 'j',
	'к': 'k', 'ӏ': 'l', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c', 'т': 't',
	'у': 'y', 'х': 'x', 'ѕ': 's', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'ү': 'y', 'ɡ': 'g',
	'ь': 'b', 'г': 'r', 'п': 'n', 'ц': 'u',
	// Greek
	'α': 'a', 'β': 'b', 'γ': 'y', 'ε': 'e', 'η': 'n', 'ι': 'i', 'κ': 'k', 'μ': 'u',
	'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x', 'ω': 'w', 'ϲ': 'c',
	'ϳ': 'j', 'ς': 'c', 'ζ': 'z',
	// Latin look-alikes outside ASCII that NFKC keeps
	'ı': 'i', 'ȷ': 'j', 'ł': 'l',
}

// skeleton folds characters that are easy to confuse once a name is in the
// allowed set.
var skeleton = strings.NewReplacer("1", "l", "i", "l", "|", "l", "0", "o", "rn", "m", "vv", "w")

// ParseUsername normalises raw and checks it against the rules above.
func ParseUsername(raw string) (Username, error) {
	if len(raw) > 4*MaxUsernameLen*4 {
		return Username{}, fmt.Errorf("%w: longer than %d characters", ErrInvalidUsername, MaxUsernameLen)
	}
	s := norm.NFKC.String(strings.TrimSpace(raw))
	s = folder.String(s)
	s = norm.NFKC.String(s)
	var b strings.Builder
	for _, r := range s {
		if m, ok := homoglyphs[r]; ok {
			r = m
		}
		if !allowedRune(r) {
			return Username{}, fmt.Errorf("%w: %q is not allowed (use a-z, 0-9, '_', '-', '.')", ErrInvalidUsername, r)
		}
		b.WriteRune(r)
	}
	name := b.String()
	n := utf8.RuneCountInString(name)
	switch {
	case n < MinUsernameLen:
		return Username{}, fmt.Errorf("%w: shorter than %d characters", ErrInvalidUsername, MinUsernameLen)
	case n > MaxUsernameLen:
		return Username{}, fmt.Errorf("%w: longer than %d characters", ErrInvalidUsername, MaxUsernameLen)
	case !isAlnum(rune(name[0])):
		return Username{}, fmt.Errorf("%w: must start with a letter or digit", ErrInvalidUsername)
	}
	return Username{name: name, key: skeleton.Replace(name)}, nil
}

// MustUsername is ParseUsername for constants in tests and examples; it
// panics on an invalid name.
func MustUsername(raw string) Username {
	u, err := ParseUsername(raw)
	if err != nil {
		panic(err)
	}
	return u
}

func allowedRune(r rune) bool { return isAlnum(r) || r == '_' || r == '-' || r == '.' }

func isAlnum(r rune) bool { return (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') }

// String is the normalised name, safe to show (it holds only the allowed set).
func (u Username) String() string { return u.name }

// Key is the look-alike skeleton that decides whether two names are the same account.
func (u Username) Key() string { return u.key }

// IsZero reports whether u is the zero value (no name).
func (u Username) IsZero() bool { return u.name == "" }

// Equal reports whether u and o are the same account.
func (u Username) Equal(o Username) bool { return u.key == o.key }
