package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/turnrest"
	"github.com/chatx/chatx/ports"
)

// The reachability routes: what the registry offers (GET /v1/info),
// signalling between live sessions (POST /v1/signals) and TURN credentials
// (GET /v1/relays). docs/registry-api.md §3.8–3.10.

// maxSignalB64 is the longest base64 text of a MaxSignalSize payload.
var maxSignalB64 = base64.StdEncoding.EncodedLen(ports.MaxSignalSize)

// queryName reads ?name= as the session's name (the events route's form).
func queryName(w http.ResponseWriter, r *http.Request) (domain.Username, bool) {
	r.SetPathValue("name", r.URL.Query().Get("name"))
	return pathName(w, r)
}

// session authenticates the request as a live session (?name= and a
// bearer token), answering 401 session_invalid when it is not one.
func (s *Server) session(w http.ResponseWriter, r *http.Request) (ports.SessionInfo, bool) {
	name, ok := queryName(w, r)
	if !ok {
		return ports.SessionInfo{}, false
	}
	info, err := s.svc.Authenticate(r.Context(), name, bearer(r))
	if err != nil {
		s.serviceError(w, r, err)
		return ports.SessionInfo{}, false
	}
	return info, true
}

func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	out := infoResponse{Proof: domain.ProofTagV2, Relay: len(s.turnServers()) > 0, MaxSignalBytes: ports.MaxSignalSize}
	if s.stun != nil {
		out.STUN = &stunJSON{Ports: s.stun.ports()}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSignal passes an opaque payload from the authenticated session to
// the recipient's live session stream. The registry vouches for the
// sender's name and key only.
func (s *Server) handleSignal(w http.ResponseWriter, r *http.Request) {
	from, ok := s.session(w, r)
	if !ok {
		return
	}
	if ok, wait := s.signalRL.allow(hex.EncodeToString(from.TokenHash[:]), time.Now()); !ok {
		writeError(w, http.StatusTooManyRequests, codeRateLimited, "too many signals from this session; retry later", wait)
		return
	}
	var req signalRequest
	if !decode(w, r, &req) {
		return
	}
	to, err := domain.ParseUsername(req.To)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidName, "to: "+err.Error(), 0)
		return
	}
	if len(req.Payload) > maxSignalB64 {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("payload larger than %d bytes", ports.MaxSignalSize), 0)
		return
	}
	payload, err := base64.StdEncoding.DecodeString(req.Payload)
	if err != nil || len(payload) == 0 {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "payload: want standard base64 of 1 to 4096 bytes", 0)
		return
	}
	if len(payload) > ports.MaxSignalSize {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("payload larger than %d bytes", ports.MaxSignalSize), 0)
		return
	}
	live, err := s.svc.LiveSession(r.Context(), to)
	if err != nil {
		s.serviceError(w, r, err)
		return
	}
	s.sessMu.Lock()
	st, ok := s.byName[to.Key()]
	s.sessMu.Unlock()
	if !ok || st.tokenHash != live.TokenHash || st.signals == nil {
		writeError(w, http.StatusNotFound, codePeerOffline, to.String()+" has no live session stream", 0)
		return
	}
	select {
	case st.signals <- encodeSignal(from.Identity, payload):
		w.WriteHeader(http.StatusAccepted)
	default:
		writeError(w, http.StatusServiceUnavailable, codeBusy, "the recipient's signal queue is full; retry later", time.Second)
	}
}

func encodeSignal(from domain.Identity, payload []byte) []byte {
	b, _ := json.Marshal(signalEvent{
		From:    from.Name().String(),
		Key:     base64.StdEncoding.EncodeToString(from.PublicKey()),
		Payload: base64.StdEncoding.EncodeToString(payload),
	})
	var buf bytes.Buffer
	buf.WriteString("event: signal\ndata: ")
	buf.Write(b)
	buf.WriteString("\n\n")
	return buf.Bytes()
}

// handleRelays hands the session short-lived TURN REST credentials for
// every configured relay URL.
func (s *Server) handleRelays(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.session(w, r)
	if !ok {
		return
	}
	out := relaysResponse{Relays: []relayJSON{}}
	now := time.Now()
	for _, t := range s.turnServers() {
		user, pass, exp := TURNCredentials(t.Secret, sess.Identity.Name().String(), now, t.TTL)
		for _, u := range t.URLs {
			out.Relays = append(out.Relays, relayJSON{URL: u, Username: user, Password: pass, Expires: exp.UTC()})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// TURNCredentials are TURN REST credentials (coturn use-auth-secret) for
// name, valid for ttl from now: username "<unix expiry>:<name>", password
// standard base64 of HMAC-SHA1(secret, username).
func TURNCredentials(secret []byte, name string, now time.Time, ttl time.Duration) (username, password string, expires time.Time) {
	expires = now.Add(ttl).Truncate(time.Second)
	username, password = turnrest.Credentials(secret, name, expires)
	return username, password, expires
}

// AddMetrics serves c's metrics beside the registry's own on /metrics (the
// embedded relay's, say).
func (s *Server) AddMetrics(c prometheus.Collector) { s.metrics.reg.MustRegister(c) }

// AddTURN adds a relay to those GET /v1/relays hands credentials for (the
// embedded TURN server registers itself so).
func (s *Server) AddTURN(t TURNServer) {
	if t.TTL <= 0 {
		t.TTL = DefaultTURNTTL
	}
	s.turnMu.Lock()
	defer s.turnMu.Unlock()
	s.turn = append(s.turn, t)
}

func (s *Server) turnServers() []TURNServer {
	s.turnMu.RLock()
	defer s.turnMu.RUnlock()
	return s.turn
}

// STUNPorts are the UDP ports of the STUN server, nil when it is off.
func (s *Server) STUNPorts() []int {
	if s.stun == nil {
		return nil
	}
	return s.stun.ports()
}
