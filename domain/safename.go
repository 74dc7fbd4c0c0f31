package domain

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFileNameBytes bounds a safe file name, leaving room under the usual
// 255-byte limit for " (99)" and ".part" suffixes.
const MaxFileNameBytes = 200

// MaxRelativePathBytes and MaxPathDepth bound a path inside a folder offer.
const (
	MaxRelativePathBytes = 4096
	MaxPathDepth         = 64
)

// reservedNames are device names that Windows treats specially with any
// extension; a file with such a name is unsafe to copy to a Windows disk.
var reservedNames = map[string]bool{
	"con": true, "prn": true, "aux": true, "nul": true, "conin$": true, "conout$": true,
	"com1": true, "com2": true, "com3": true, "com4": true, "com5": true, "com6": true, "com7": true, "com8": true, "com9": true,
	"lpt1": true, "lpt2": true, "lpt3": true, "lpt4": true, "lpt5": true, "lpt6": true, "lpt7": true, "lpt8": true, "lpt9": true,
	"com¹": true, "com²": true, "com³": true, "lpt¹": true, "lpt²": true, "lpt³": true,
}

// SafeFileName reduces any peer-supplied name to a base name that is safe to
// create inside a downloads folder and to show on a terminal:
//   - only the part after the last '/' or '\' is kept (so "../../x",
//     "/etc/passwd" and "C:\x" lose their directories), and a drive prefix is dropped;
//   - control characters (C0, C1, DEL, so also ESC, CR and LF), bidi
//     overrides and isolates, zero-width and other format characters,
//     invalid UTF-8 and the characters Windows forbids (<>:"|?*) become '_';
//   - leading spaces and trailing spaces and dots are trimmed;
//   - "", "." and ".." become "file"; reserved device names (NUL, COM1, …, with
//     any extension) get a leading '_';
//   - the result is at most MaxFileNameBytes bytes, keeping a short extension.
//
// It is idempotent: SafeFileName(SafeFileName(x)) == SafeFileName(x).
func SafeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]) {
		name = name[2:]
	}
	var b strings.Builder
	for i, r := range name {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(name[i:]); size == 1 {
				b.WriteByte('_')
				continue
			}
		}
		if unsafeRune(r) {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r)
	}
	s := strings.TrimLeft(b.String(), " ")
	s = strings.TrimRight(s, " .")
	if s == "" || s == "." || s == ".." {
		return "file"
	}
	if isReserved(s) {
		s = "_" + s
	}
	return truncateName(s, MaxFileNameBytes)
}

// SafeRelativePath checks a slash-separated path from a folder offer. Unlike
// SafeFileName it refuses rather than repairs: every part must already be a
// safe name, the path must be relative, with no "." or ".." parts, no
// backslashes, no drive letters, at most MaxPathDepth parts and
// MaxRelativePathBytes bytes.
func SafeRelativePath(p string) (string, error) {
	if p == "" || len(p) > MaxRelativePathBytes {
		return "", fmt.Errorf("%w: path of %d bytes", ErrUnsafePath, len(p))
	}
	parts := strings.Split(p, "/")
	if len(parts) > MaxPathDepth {
		return "", fmt.Errorf("%w: %d levels deep", ErrUnsafePath, len(parts))
	}
	for _, part := range parts {
		if part == "" || part == "." || part == ".." || SafeFileName(part) != part {
			return "", fmt.Errorf("%w: %q", ErrUnsafePath, p)
		}
	}
	return p, nil
}

func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f: // C0, DEL, C1
		return true
	case strings.ContainsRune(`<>:"|?*/\`, r):
		return true
	case r == 0xfffd: // replacement character: stands for bytes we could not read
		return true
	case unicode.Is(unicode.Cf, r): // format: bidi controls, zero-width, BOM …
		return true
	case unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
		return true
	case r >= 0xe000 && r <= 0xf8ff, r >= 0xf0000: // private use
		return true
	}
	return false
}

func isASCIILetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isReserved(s string) bool {
	base := strings.ToLower(s)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	return reservedNames[strings.TrimRight(base, " ")]
}

// truncateName cuts s to at most max bytes on a rune boundary, keeping an
// extension of up to 16 bytes.
func truncateName(s string, max int) string {
	if len(s) <= max {
		return s
	}
	ext := ""
	if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= 16 {
		ext = s[i:]
		s = s[:i]
	}
	keep := max - len(ext)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	out := strings.TrimRight(s[:keep], " .") + ext
	if out == "" || out == ext {
		return "file" + ext
	}
	return out
}

// DisplayText makes text from a peer or the registry safe to print on a
// terminal: control, escape, bidi and other format characters are replaced by
// visible escapes (\x1b, \u202e), invalid UTF-8 by U+FFFD. User interfaces add
// their own markup escaping on top (tview tags).
func DisplayText(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || (unsafeRune(r) && r != '\n' && r != '\t' && !strings.ContainsRune(`<>:"|?*/\`, r)) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				b.WriteRune(utf8.RuneError)
				continue
			}
			b.WriteRune(r)
		case r == '\n' || r == '\t' || strings.ContainsRune(`<>:"|?*/\`, r):
			b.WriteRune(r)
		case unsafeRune(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
