package registry

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxBody caps every request and response body the registry reads.
const maxBody = 64 << 10

// JSON bodies of the HTTP API (docs/registry-api.md). Binary values are
// standard base64 with padding.

type endpointsJSON struct {
	Link []string `json:"link"`
	File []string `json:"file"`
}

type challengeResponse struct {
	Challenge string `json:"challenge"`
}

type registerRequest struct {
	Key       string        `json:"key"`
	Challenge string        `json:"challenge"`
	Endpoints endpointsJSON `json:"endpoints"`
	Signature string        `json:"signature"`
}

type registerResponse struct {
	Name             string        `json:"name"`
	Token            string        `json:"token"`
	ExpiresInSeconds int           `json:"expires_in_seconds"`
	STUN             *stunJSON     `json:"stun,omitempty"`
	Refused          []refusedJSON `json:"refused"`
}

// stunJSON is the STUN service of the registry: its UDP ports and, in a
// register response, this session's credentials.
type stunJSON struct {
	Ports    []int  `json:"ports"`
	Username string `json:"username,omitempty"`
	Key      string `json:"key,omitempty"`
}

type refusedJSON struct {
	List     string `json:"list"`
	Index    int    `json:"index"`
	Endpoint string `json:"endpoint"`
	Reason   string `json:"reason"`
}

type infoResponse struct {
	Proof          string    `json:"proof"`
	STUN           *stunJSON `json:"stun"`
	Relay          bool      `json:"relay"`
	MaxSignalBytes int       `json:"max_signal_bytes"`
}

type candidateJSON struct {
	Type  string `json:"type"`
	Net   string `json:"net"`
	Addr  string `json:"addr"`
	Scope string `json:"scope,omitempty"`
}

type signalRequest struct {
	To      string `json:"to"`
	Payload string `json:"payload"`
}

type signalEvent struct {
	From    string `json:"from"`
	Key     string `json:"key"`
	Payload string `json:"payload"`
}

type relayJSON struct {
	URL      string    `json:"url"`
	Username string    `json:"username"`
	Password string    `json:"password"`
	Expires  time.Time `json:"expires"`
}

type relaysResponse struct {
	Relays []relayJSON `json:"relays"`
}

type unregisterRequest struct {
	Key       string `json:"key"`
	Challenge string `json:"challenge"`
	Signature string `json:"signature"`
}

type peerJSON struct {
	Name        string          `json:"name"`
	Key         string          `json:"key"`
	Fingerprint string          `json:"fingerprint"`
	Online      bool            `json:"online"`
	Endpoints   endpointsJSON   `json:"endpoints"`
	Candidates  []candidateJSON `json:"candidates"`
	NAT         string          `json:"nat,omitempty"`
	LastSeen    *time.Time      `json:"last_seen,omitempty"`
}

type onlineResponse struct {
	Users []peerJSON `json:"users"`
}

type errorBody struct {
	Error apiErrorJSON `json:"error"`
}

type apiErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Stable error codes.
const (
	codeMalformed        = "malformed_json"
	codeTooLarge         = "too_large"
	codeInvalidName      = "invalid_name"
	codeInvalidKey       = "invalid_key"
	codeInvalidRequest   = "invalid_request"
	codeNameTaken        = "name_taken"
	codeBadSignature     = "bad_signature"
	codeChallengeInvalid = "challenge_invalid"
	codeSessionInvalid   = "session_invalid"
	codeUnknownUser      = "unknown_user"
	codeRateLimited      = "rate_limited"
	codeBusy             = "busy"
	codeNotFound         = "not_found"
	codeMethod           = "method_not_allowed"
	codeInternal         = "internal"
	codeOutdatedProof    = "outdated_proof"
	codePeerOffline      = "peer_offline"
	// codeRedirect is never sent by a registry: the client gives it to a
	// 3xx answer, which it does not follow.
	codeRedirect = "redirect"
)

// invalidRequest is implemented by service errors that blame a field of
// the request (app.EndpointError): they answer 400 invalid_request.
type invalidRequest interface {
	error
	InvalidRequest() bool
}

// errorStatus maps a service error to its status and stable code.
func errorStatus(err error) (int, string) {
	var bad invalidRequest
	switch {
	case errors.As(err, &bad) && bad.InvalidRequest():
		return http.StatusBadRequest, codeInvalidRequest
	case errors.Is(err, domain.ErrInvalidUsername):
		return http.StatusBadRequest, codeInvalidName
	case errors.Is(err, domain.ErrInvalidKey):
		return http.StatusBadRequest, codeInvalidKey
	case errors.Is(err, domain.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, codeTooLarge
	case errors.Is(err, domain.ErrNameTaken):
		return http.StatusConflict, codeNameTaken
	case errors.Is(err, domain.ErrOutdatedProof):
		return http.StatusBadRequest, codeOutdatedProof
	case errors.Is(err, domain.ErrPeerOffline):
		return http.StatusNotFound, codePeerOffline
	case errors.Is(err, domain.ErrBadSignature):
		return http.StatusUnauthorized, codeBadSignature
	case errors.Is(err, ports.ErrChallengeInvalid):
		return http.StatusUnauthorized, codeChallengeInvalid
	case errors.Is(err, ports.ErrSessionInvalid):
		return http.StatusUnauthorized, codeSessionInvalid
	case errors.Is(err, domain.ErrUnknownPeer), errors.Is(err, domain.ErrNotFound):
		return http.StatusNotFound, codeUnknownUser
	case errors.Is(err, ports.ErrBusy):
		return http.StatusServiceUnavailable, codeBusy
	default:
		return http.StatusInternalServerError, codeInternal
	}
}

// APIError is an error answer of the registry. It unwraps to the domain or
// ports error its code stands for, so callers test with errors.Is.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("registry: %s (%d %s)", e.Message, e.Status, e.Code)
}

// Unwrap maps the stable code back to a sentinel error.
func (e *APIError) Unwrap() error {
	switch e.Code {
	case codeInvalidName:
		return domain.ErrInvalidUsername
	case codeInvalidKey:
		return domain.ErrInvalidKey
	case codeTooLarge:
		return domain.ErrTooLarge
	case codeNameTaken:
		return domain.ErrNameTaken
	case codeBadSignature:
		return domain.ErrBadSignature
	case codeOutdatedProof:
		return domain.ErrOutdatedProof
	case codePeerOffline:
		return domain.ErrPeerOffline
	case codeChallengeInvalid:
		return ports.ErrChallengeInvalid
	case codeSessionInvalid:
		return ports.ErrSessionInvalid
	case codeUnknownUser:
		return domain.ErrUnknownPeer
	case codeRateLimited, codeBusy:
		return ports.ErrBusy
	case codeMailboxFull:
		return ports.ErrMailboxFull
	case codePrekeyMissing:
		return ports.ErrPrekeyMissing
	case codeMailboxDisabled:
		return ports.ErrMailboxDisabled
	}
	return nil
}
