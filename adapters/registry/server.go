package registry

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Runner is what a registry service implements to sweep expired sessions
// (app.Registry does). Serve runs it for as long as it serves.
type Runner interface {
	Run(ctx context.Context) error
}

// clientChallenger is what a registry service implements to count
// outstanding challenges per client (app.Registry does): the server passes
// the client key (clientKey). Loopback clients are not counted per client,
// like their streams: tests and benchmarks run thousands of clients there.
type clientChallenger interface {
	ChallengeFor(ctx context.Context, client string) ([]byte, error)
}

// Server is the registry's HTTPS front: it decodes requests, checks rate
// limits and hands them to the registry service.
type Server struct {
	cfg     ServerConfig
	svc     ports.RegistryService
	log     *slog.Logger
	ln      *limitListener
	fp      string
	srv     *http.Server
	metrics *metrics
	hub     *hub
	shed    *shedder

	challengeRL *rateLimiter
	registerRL  *rateLimiter
	signalRL    *rateLimiter // by sending session
	stun        *stunServer  // nil when off
	turnMu      sync.RWMutex
	turn        []TURNServer
	mailbox     atomic.Pointer[MailboxRoutes] // nil: no mailbox (NewMailboxRoutes)

	sessMu        sync.Mutex
	sessStreams   map[[32]byte]sessStream // SHA-256 of a session token → its newest stream
	byName        map[string]sessStream   // Username.Key → the newest session stream of that name
	streamSeq     uint64
	clientStreams map[string]int // open streams by client key

	baseCtx    context.Context
	cancelBase context.CancelFunc
	closeOnce  sync.Once
}

// sessStream is the live presence stream of a session; a newer stream of
// the same session cancels it.
type sessStream struct {
	id        uint64
	cancel    context.CancelFunc
	tokenHash [32]byte
	signals   chan []byte // encoded `event: signal` blocks for this stream
}

// NewServer loads or generates the TLS certificate, binds the listen
// address and prepares the routes; Serve serves. The cleanup closes the
// listener and every connection.
func NewServer(cfg ServerConfig, svc ports.RegistryService, logger *slog.Logger) (*Server, func(), error) {
	if svc == nil {
		return nil, nil, errors.New("registry server: nil service")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	cert, generated, err := loadOrCreateCert(cfg.TLSCert, cfg.TLSKey, cfg.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("registry server: %w", err)
	}
	l, err := net.Listen("tcp", string(cfg.Listen))
	if err != nil {
		return nil, nil, fmt.Errorf("registry server: listen %s: %w", cfg.Listen, err)
	}
	var stunConns [ports.STUNServerPorts]*net.UDPConn
	if !cfg.NoSTUN {
		addr := stunListenAddr(cfg, l.Addr())
		if stunConns, err = listenSTUN(addr); err != nil {
			_ = l.Close()
			return nil, nil, fmt.Errorf("registry server: %w", err)
		}
	}
	sh := &shedder{log: logger, fdLimit: descriptorLimit()}
	hard, shedAt := connCaps(cfg.MaxConns, sh.fdLimit)
	sh.limit = int64(shedAt)
	s := &Server{
		cfg:           cfg,
		svc:           svc,
		log:           logger,
		shed:          sh,
		ln:            newLimitListener(fdWatchListener{Listener: l, sh: sh}, hard),
		fp:            Fingerprint(cert.Certificate[0]),
		hub:           newHub(),
		sessStreams:   make(map[[32]byte]sessStream),
		byName:        make(map[string]sessStream),
		signalRL:      newRateLimiter(cfg.SignalRate, 0),
		turn:          cfg.TURN,
		clientStreams: make(map[string]int),
		challengeRL:   newRateLimiter(cfg.ChallengeRate, 0),
		registerRL:    newRateLimiter(cfg.RegisterRate, 0),
	}
	if !cfg.NoSTUN {
		s.stun = newSTUNServer(stunConns, svc, cfg.STUNRate, logger)
	}
	sh.open = s.ln.open.Load
	s.metrics = newMetrics(svc, s.ln.open.Load)
	s.metrics.addShed(sh)
	if s.stun != nil {
		s.stun.count = s.metrics.stunRequest
	}
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())
	s.srv = &http.Server{
		Handler:           s.routes(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				logger.Info("new connection", "remote", c.RemoteAddr().String())
			}
		},
	}
	logger.Info("registry TLS certificate", "sha256", s.fp, "generated", generated)
	return s, func() { _ = s.Close() }, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// CertFingerprint is the SHA-256 of the served certificate, lower-case hex.
func (s *Server) CertFingerprint() string { return s.fp }

// URL is a registry URL for clients on this machine, with the pin.
func (s *Server) URL() RegistryURL {
	return RegistryURL(fmt.Sprintf("https://127.0.0.1:%s/#sha256=%s", portOf(s.ln.Addr()), s.fp))
}

// clientURL is the URL to give clients: the listening host when one was
// given (--listen 127.0.0.1:5000), HOST for the machine's name when it
// listens on every address.
func clientURL(a net.Addr, fp string) string {
	host, port, err := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); err != nil || host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "HOST"
	}
	return fmt.Sprintf("https://%s/#sha256=%s", net.JoinHostPort(host, port), fp)
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// Serve serves until ctx is done, then shuts down gracefully (open presence
// streams are ended). If the service is a Runner it runs alongside.
func (s *Server) Serve(ctx context.Context) error {
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if r, ok := s.svc.(Runner); ok {
		wg.Go(func() {
			if err := r.Run(runCtx); err != nil {
				s.log.Error("registry service stopped", "err", err)
			}
		})
	}
	if m := s.mailbox.Load(); m != nil {
		if r, ok := m.svc.(Runner); ok {
			wg.Go(func() {
				if err := r.Run(runCtx); err != nil {
					s.log.Error("mailbox stopped", "err", err)
				}
			})
		}
	}
	events, err := watchHub(runCtx, s.svc)
	if err != nil {
		stopRun()
		wg.Wait()
		return fmt.Errorf("registry server: watch presence: %w", err)
	}
	wg.Go(func() { s.hub.run(runCtx, s.svc, events, s.log.Warn) })
	if s.stun != nil {
		wg.Go(func() { s.stun.run(runCtx) })
		s.log.Info("STUN server started", "udp_ports", s.stun.ports())
	}
	defer func() { stopRun(); wg.Wait() }()

	s.log.Info(fmt.Sprintf("registry started, listening on %s", s.ln.Addr()), "addr", s.ln.Addr().String(), "sha256", s.fp,
		"client_url", clientURL(s.ln.Addr(), s.fp))
	errc := make(chan error, 1)
	go func() { errc <- s.srv.ServeTLS(s.ln, "", "") }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("registry server: %w", err)
	case <-ctx.Done():
	}
	s.cancelBase()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.srv.Shutdown(sctx)
	<-errc
	if err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("registry server: shutdown: %w", err)
	}
	s.log.Info("registry stopped")
	return nil
}

// Streams is the number of open presence streams.
func (s *Server) Streams() int64 { return s.metrics.streams.Load() }

// Close stops at once: listener, connections and streams.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.cancelBase()
		err = s.srv.Close()
		_ = s.ln.Close()
		if s.stun != nil {
			s.stun.close()
		}
	})
	return err
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.instrument(pattern, s.shed.shed(pattern, h)))
	}
	handle("POST /v1/challenges", s.handleChallenge)
	handle("PUT /v1/users/{name}/presence", s.handleRegister)
	handle("DELETE /v1/users/{name}/presence", s.handleUnregister)
	handle("POST /v1/users/{name}/presence/heartbeat", s.handleHeartbeat)
	handle("GET /v1/users/{name}", s.handleLookup)
	handle("GET /v1/online", s.handleOnline)
	handle("GET /v1/events", s.handleEvents)
	handle("GET /v1/info", s.handleInfo)
	handle("POST /v1/signals", s.handleSignal)
	handle("GET /v1/relays", s.handleRelays)
	handle("GET /healthz", s.handleHealth)
	handle("GET /metrics", s.handleMetrics)
	mailPaths := s.mailboxRoutes(handle)
	// Known paths with another method, then everything else.
	allowed := map[string]string{
		"/v1/challenges":                      "POST",
		"/v1/users/{name}/presence":           "PUT, DELETE",
		"/v1/users/{name}/presence/heartbeat": "POST",
		"/v1/users/{name}":                    "GET",
		"/v1/online":                          "GET",
		"/v1/events":                          "GET",
		"/v1/info":                            "GET",
		"/v1/signals":                         "POST",
		"/v1/relays":                          "GET",
		"/healthz":                            "GET",
		"/metrics":                            "GET",
	}
	for path, allow := range mailPaths {
		allowed[path] = allow
	}
	for path, allow := range allowed {
		handle(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, codeMethod, "method "+r.Method+" not allowed; use "+allow, 0)
		})
	}
	handle("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "no such route", 0)
	})
	return mux
}

func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.request(route, code)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, codeInternal, "encode response", 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string, retry time.Duration) {
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	b, _ := json.Marshal(errorBody{Error: apiErrorJSON{Code: code, Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// serviceError answers with the status and code of a service error. The
// message is the error's text: service errors name only public things.
func (s *Server) serviceError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := errorStatus(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.Error("registry request failed", "route", r.Pattern, "err", err)
		msg = "internal error"
	}
	var retry time.Duration
	if status == http.StatusServiceUnavailable {
		retry = time.Second
	}
	writeError(w, status, code, msg, retry)
}

// decode reads one JSON object of at most maxBody bytes into v.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeLimited(w, r, v, maxBody)
}

// decodeLimited is decode with another bound on the body.
func decodeLimited(w http.ResponseWriter, r *http.Request, v any, maxBody int64) bool {
	body := http.MaxBytesReader(w, r.Body, maxBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBody), 0)
			return false
		}
		writeError(w, http.StatusBadRequest, codeMalformed, "malformed JSON: "+err.Error(), 0)
		return false
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		writeError(w, http.StatusBadRequest, codeMalformed, "malformed JSON: more than one value", 0)
		return false
	} else if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBody), 0)
		return false
	}
	return true
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientKey is whom per-client limits count against: an IPv4 address
// (/32), or the /64 prefix of an IPv6 address, since one host or site
// usually holds a whole /64 and could otherwise take a fresh bucket per
// address. An IPv4-mapped IPv6 address counts as its IPv4 address.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

func (s *Server) limited(w http.ResponseWriter, r *http.Request, rl *rateLimiter) bool {
	ok, wait := rl.allow(clientKey(r.RemoteAddr), time.Now())
	if !ok {
		writeError(w, http.StatusTooManyRequests, codeRateLimited, "too many requests from this address; retry later", wait)
		return true
	}
	return false
}

func pathName(w http.ResponseWriter, r *http.Request) (domain.Username, bool) {
	name, err := domain.ParseUsername(r.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidName, err.Error(), 0)
		return domain.Username{}, false
	}
	return name, true
}

func b64(w http.ResponseWriter, field, s string, max int) ([]byte, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) > max {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, fmt.Sprintf("%s: want standard base64 of at most %d bytes", field, max), 0)
		return nil, false
	}
	return b, true
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) handleChallenge(w http.ResponseWriter, r *http.Request) {
	if s.limited(w, r, s.challengeRL) {
		return
	}
	var c []byte
	var err error
	if cf, ok := s.svc.(clientChallenger); ok && !isLoopback(r.RemoteAddr) {
		c, err = cf.ChallengeFor(r.Context(), clientKey(r.RemoteAddr))
	} else {
		c, err = s.svc.Challenge(r.Context())
	}
	if err != nil {
		s.serviceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, challengeResponse{Challenge: base64.StdEncoding.EncodeToString(c)})
}

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if s.limited(w, r, s.registerRL) {
		return
	}
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	var req registerRequest
	if !decode(w, r, &req) {
		return
	}
	key, ch, sig, ok := signedFields(w, req.Key, req.Challenge, req.Signature)
	if !ok {
		return
	}
	ip := remoteIP(r)
	proof := domain.RegistryProof{
		Action:    domain.ActionRegister,
		Name:      name,
		Key:       key,
		Challenge: ch,
		Endpoints: domain.Endpoints{Link: req.Endpoints.Link, File: req.Endpoints.File},
	}
	sess, err := s.svc.Register(r.Context(), ports.RegisterRequest{Proof: proof, Signature: sig, ObservedHost: ip})
	if err != nil {
		s.log.Info("registration refused", "peer", name.String(), "remote", ip, "err", err)
		s.serviceError(w, r, err)
		return
	}
	s.log.Info(fmt.Sprintf("registered peer %s at %s:%s/%s", name, ip, firstPort(req.Endpoints.Link), firstPort(req.Endpoints.File)), "peer", name.String())
	resp := registerResponse{Name: name.String(), Token: sess.Token, ExpiresInSeconds: int(sess.ExpiresIn / time.Second), Refused: []refusedJSON{}}
	if s.stun != nil && sess.STUN.Username != "" {
		resp.STUN = &stunJSON{Ports: s.stun.ports(), Username: sess.STUN.Username, Key: base64.StdEncoding.EncodeToString(sess.STUN.Key)}
	}
	for _, r := range sess.Refused {
		resp.Refused = append(resp.Refused, refusedJSON{List: r.List, Index: r.Index, Endpoint: r.Endpoint, Reason: r.Reason})
	}
	if len(sess.Refused) > 0 {
		s.log.Info("advertised endpoints refused", "peer", name.String(), "count", len(sess.Refused))
	}
	writeJSON(w, http.StatusOK, resp)
}

// signedFields decodes the key, challenge and signature every signed
// request carries, answering 400 for the first that is malformed.
func signedFields(w http.ResponseWriter, key, challenge, signature string) (ed25519.PublicKey, []byte, []byte, bool) {
	k, ok := b64(w, "key", key, ed25519.PublicKeySize)
	if !ok {
		return nil, nil, nil, false
	}
	ch, ok := b64(w, "challenge", challenge, domain.ChallengeSize)
	if !ok {
		return nil, nil, nil, false
	}
	sig, ok := b64(w, "signature", signature, ed25519.SignatureSize)
	if !ok {
		return nil, nil, nil, false
	}
	return k, ch, sig, true
}

func firstPort(eps []string) string {
	for _, e := range eps {
		if _, p, err := net.SplitHostPort(e); err == nil {
			return p
		}
	}
	return "-"
}

func (s *Server) handleUnregister(w http.ResponseWriter, r *http.Request) {
	if s.limited(w, r, s.registerRL) {
		return
	}
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	var req unregisterRequest
	if !decode(w, r, &req) {
		return
	}
	key, ch, sig, ok := signedFields(w, req.Key, req.Challenge, req.Signature)
	if !ok {
		return
	}
	proof := domain.RegistryProof{Action: domain.ActionUnregister, Name: name, Key: key, Challenge: ch}
	if err := s.svc.Unregister(r.Context(), proof, sig); err != nil {
		s.serviceError(w, r, err)
		return
	}
	s.log.Info(fmt.Sprintf("removed peer %s (unregistered)", name), "peer", name.String())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	if err := s.svc.Heartbeat(r.Context(), name, bearer(r)); err != nil {
		s.serviceError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func toPeerJSON(p domain.Peer) peerJSON {
	out := peerJSON{
		Name:        p.Name().String(),
		Key:         base64.StdEncoding.EncodeToString(p.Identity.PublicKey()),
		Fingerprint: fmt.Sprintf("%x", p.Identity.Fingerprint()),
		Online:      p.Online,
		Endpoints:   endpointsJSON{Link: nonNil(p.Endpoints.Link), File: nonNil(p.Endpoints.File)},
		Candidates:  make([]candidateJSON, 0, len(p.Endpoints.Candidates)),
		NAT:         string(p.Endpoints.NAT),
	}
	for _, c := range p.Endpoints.Candidates {
		out.Candidates = append(out.Candidates, candidateJSON{Type: string(c.Type), Net: c.Net, Addr: c.Addr, Scope: string(c.Scope)})
	}
	if !p.LastSeen.IsZero() {
		t := p.LastSeen.UTC()
		out.LastSeen = &t
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	p, err := s.svc.Lookup(r.Context(), name)
	if err != nil {
		s.serviceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPeerJSON(p))
}

func (s *Server) handleOnline(w http.ResponseWriter, r *http.Request) {
	if s.cfg.HideUsers {
		writeError(w, http.StatusForbidden, codeListingDisabled, "this registry does not list its users; look them up by name", 0)
		return
	}
	list, err := s.svc.Online(r.Context())
	if err != nil {
		s.serviceError(w, r, err)
		return
	}
	out := onlineResponse{Users: make([]peerJSON, 0, len(list))}
	for _, p := range list {
		out.Users = append(out.Users, toPeerJSON(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "shedding": s.shed.pressured()})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.handler().ServeHTTP(w, r)
}

// handleEvents streams presence as Server-Sent Events. With a session
// (?name= and a bearer token) the stream is that session's: when it closes,
// the session ends and the user shows offline at once.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	release, ok := s.takeStreamSlot(r)
	if !ok {
		writeError(w, http.StatusTooManyRequests, codeRateLimited, "too many open presence streams from this address; close one or retry later", 5*time.Second)
		return
	}
	defer release()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	token := bearer(r)
	var name domain.Username
	var signals chan []byte         // nil (never ready) on an anonymous stream
	var mailArrived <-chan struct{} // nil without a session or a mailbox
	if token != "" {
		var ok bool
		if name, ok = queryName(w, r); !ok {
			return
		}
		if err := s.svc.Heartbeat(ctx, name, token); err != nil {
			s.serviceError(w, r, err)
			return
		}
		signals = make(chan []byte, s.cfg.SignalQueue)
		if m := s.mailbox.Load(); m != nil {
			mailArrived = m.svc.Arrivals(ctx, name)
		}
	}
	// With HideUsers the stream carries nobody's presence: only signals,
	// mail and pings after an empty synced (presence nil never delivers).
	var presence <-chan *hubEvent
	var start streamStart
	if !s.cfg.HideUsers {
		sub := s.hub.subscribe()
		defer s.hub.unsubscribe(sub)
		presence = sub.ch
		// Subscribed before the snapshot (or the replay since the client's
		// Last-Event-ID): no change falls between the two (a change may
		// arrive twice, which presence tolerates).
		var err error
		if start, err = s.streamStart(ctx, r); err != nil {
			s.serviceError(w, r, err)
			return
		}
	}
	s.metrics.streams.Add(1)
	defer s.metrics.streams.Add(-1)
	if token != "" {
		// A session has one live stream: a newer one ends the older. Only
		// the newest stream of a session ends the session: a client that
		// reconnects before the server noticed its old stream die must
		// not be logged out by the old one closing late.
		key := sha256.Sum256([]byte(token))
		s.sessMu.Lock()
		s.streamSeq++
		id := s.streamSeq
		if old, ok := s.sessStreams[key]; ok {
			old.cancel()
		}
		st := sessStream{id: id, cancel: cancel, tokenHash: key, signals: signals}
		s.sessStreams[key] = st
		s.byName[name.Key()] = st
		s.sessMu.Unlock()
		defer func() {
			s.sessMu.Lock()
			latest := s.sessStreams[key].id == id
			if latest {
				delete(s.sessStreams, key)
			}
			if s.byName[name.Key()].id == id {
				delete(s.byName, name.Key())
			}
			s.sessMu.Unlock()
			if !latest {
				return
			}
			if err := s.svc.Disconnect(context.WithoutCancel(ctx), name, token); err == nil {
				s.log.Info(fmt.Sprintf("removed peer %s (disconnected)", name), "peer", name.String())
			}
		}()
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if start.resumed {
		h.Set(resumedHeader, "true")
	}
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	// Each flush runs under a write deadline, so a stuck reader is cut
	// within StreamWriteTimeout, and the deadline is cleared after it: over
	// HTTP/2 an armed deadline resets the stream when it passes even if
	// nothing is being written, which would end every idle stream between
	// two pings.
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.StreamWriteTimeout))
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
		for buf.Len() > 0 {
			n := min(buf.Len(), 64<<10)
			if _, err := w.Write(buf.Next(n)); err != nil {
				return false
			}
		}
		buf.Reset()
		return rc.Flush() == nil
	}
	buf.WriteString("retry: 1000\n: chatx presence stream\n\n")
	lastID := start.write(&buf)
	start = streamStart{}
	if !flush() {
		return
	}
	ping := time.NewTicker(s.cfg.StreamPing)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			buf.WriteString(": ping\n\n")
		case b := <-signals:
			buf.Write(b)
		case _, ok := <-mailArrived:
			if !ok {
				mailArrived = nil
				continue
			}
			buf.WriteString("event: mail\ndata: {}\n\n")
		case b, ok := <-presence:
			if !ok {
				if ctx.Err() == nil {
					// Dropped for falling behind: say so and end; the client resyncs.
					buf.WriteString("event: resync\ndata: {}\n\n")
					flush()
				}
				return
			}
			// Nothing when already sent in the replay.
			buf.Write(b.since(lastID))
			// Batch what is already waiting into one write.
		drain:
			for buf.Len() < 32<<10 {
				select {
				case b, ok := <-presence:
					if !ok {
						break drain
					}
					buf.Write(b.since(lastID))
				default:
					break drain
				}
			}
		}
		if !flush() {
			return
		}
	}
}

// takeStreamSlot counts a new stream against its client key, or refuses
// it when the key has its cap of streams open. release gives the slot back.
func (s *Server) takeStreamSlot(r *http.Request) (release func(), ok bool) {
	key := clientKey(r.RemoteAddr)
	limit := s.cfg.MaxStreamsPerClient
	if isLoopback(r.RemoteAddr) {
		limit = s.cfg.MaxStreamsLoopback
	}
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	if s.clientStreams[key] >= limit {
		return nil, false
	}
	s.clientStreams[key]++
	return func() {
		s.sessMu.Lock()
		defer s.sessMu.Unlock()
		if s.clientStreams[key]--; s.clientStreams[key] <= 0 {
			delete(s.clientStreams, key)
		}
	}, true
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func writeEvent(buf *bytes.Buffer, ev domain.PresenceEvent) {
	b, err := json.Marshal(toPeerJSON(ev.Peer))
	if err != nil {
		return
	}
	buf.WriteString("event: presence\ndata: ")
	buf.Write(b)
	buf.WriteString("\n\n")
}
