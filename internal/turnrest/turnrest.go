// Package turnrest is the TURN REST credential convention
// (draft-uberti-behave-turn-rest, coturn's use-auth-secret): a TURN
// username "<unix-expiry>:<name>" and its password
// base64(HMAC-SHA1(secret, username)). A TURN server that knows the secret
// checks a password without any per-user state; the registry, which knows
// it too, hands credentials only to registered sessions. Shared by the
// embedded TURN server (adapters/relay) and whoever issues credentials.
package turnrest

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the convention (and coturn) use
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed: a username that is not "<unix-expiry>:<name>".
var ErrMalformed = errors.New("TURN REST username is not <unix-expiry>:<name>")

// Username is "<unix-expiry>:<name>"; expires is truncated to the second.
func Username(expires time.Time, name string) string {
	return strconv.FormatInt(expires.Unix(), 10) + ":" + name
}

// Password is base64(HMAC-SHA1(secret, username)), standard padding.
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Credentials returns a username and password for name valid until expires.
func Credentials(secret []byte, name string, expires time.Time) (username, password string) {
	username = Username(expires, name)
	return username, Password(secret, username)
}

// Parse splits a username into its expiry and name. The name may itself
// contain colons; the expiry is everything before the first one.
func Parse(username string) (expires time.Time, name string, err error) {
	ts, name, ok := strings.Cut(username, ":")
	if !ok || ts == "" || name == "" {
		return time.Time{}, "", ErrMalformed
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, "", fmt.Errorf("%w: expiry %q", ErrMalformed, ts)
	}
	return time.Unix(sec, 0), name, nil
}
