package registry

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The mailbox routes (docs/registry-api.md §3.11): mailbox keys published
// by a session and read by anyone, deposits by a session, fetch and delete
// by the recipient proving its key over a fresh challenge.

// MailboxConfig tunes the mailbox routes. Zero values take defaults.
type MailboxConfig struct {
	// DepositRate limits deposits per sending session (default 50/s,
	// burst 200: a client flushing an outbox of 100 messages fits).
	DepositRate Rate
	// MaxFetchBytes bounds the blobs in one fetch answer (default 1 MiB;
	// at least one mail is always answered).
	MaxFetchBytes int
}

// MailboxRoutes is the mailbox half of a registry server: building it
// (NewMailboxRoutes) enables the routes, which answer 404
// mailbox_disabled otherwise.
type MailboxRoutes struct {
	svc       ports.MailboxService
	cfg       MailboxConfig
	depositRL *rateLimiter
}

// Body bounds of the mailbox routes: a deposit carries a MaxMailSize blob
// in base64; a fetch answer up to MaxFetchBytes of blobs.
var maxDepositBody = int64(base64.StdEncoding.EncodedLen(ports.MaxMailSize) + 4096)

const codeMailboxFull, codePrekeyMissing, codeMailboxDisabled = "mailbox_full", "prekey_missing", "mailbox_disabled"

// NewMailboxRoutes enables the mailbox on srv, served by svc.
func NewMailboxRoutes(srv *Server, svc ports.MailboxService, cfg MailboxConfig) (*MailboxRoutes, error) {
	if srv == nil || svc == nil {
		return nil, errors.New("mailbox routes: nil server or service")
	}
	if cfg.DepositRate.PerSecond <= 0 {
		cfg.DepositRate = Rate{PerSecond: 50, Burst: 200}
	}
	if cfg.MaxFetchBytes <= 0 {
		cfg.MaxFetchBytes = 1 << 20
	}
	m := &MailboxRoutes{svc: svc, cfg: cfg, depositRL: newRateLimiter(cfg.DepositRate, 0)}
	srv.mailbox.Store(m)
	return m, nil
}

type prekeyJSON struct {
	Name      string    `json:"name"`
	KeyID     uint32    `json:"key_id"`
	Suite     string    `json:"suite"`
	Public    string    `json:"public"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	Signature string    `json:"signature"`
}

func toPrekeyJSON(k ports.SignedPrekey) prekeyJSON {
	return prekeyJSON{Name: k.Name.String(), KeyID: k.KeyID, Suite: k.Suite, Public: base64.StdEncoding.EncodeToString(k.Public),
		Created: k.Created.UTC(), Expires: k.Expires.UTC(), Signature: base64.StdEncoding.EncodeToString(k.Signature)}
}

func (j prekeyJSON) prekey(name domain.Username) (ports.SignedPrekey, error) {
	pub, err := base64.StdEncoding.DecodeString(j.Public)
	if err != nil || len(pub) == 0 || len(pub) > ports.MaxPrekeySize {
		return ports.SignedPrekey{}, fmt.Errorf("public: want standard base64 of 1 to %d bytes", ports.MaxPrekeySize)
	}
	sig, err := base64.StdEncoding.DecodeString(j.Signature)
	if err != nil || len(sig) > 64 {
		return ports.SignedPrekey{}, errors.New("signature: want standard base64 of 64 bytes")
	}
	return ports.SignedPrekey{Name: name, KeyID: j.KeyID, Suite: j.Suite, Public: pub, Created: j.Created, Expires: j.Expires, Signature: sig}, nil
}

type depositRequest struct {
	To         string `json:"to"`
	Blob       string `json:"blob"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

type depositResponse struct {
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

type mailboxProofRequest struct {
	Key       string   `json:"key"`
	Challenge string   `json:"challenge"`
	Signature string   `json:"signature"`
	Limit     int      `json:"limit,omitempty"`
	IDs       []string `json:"ids,omitempty"`
}

type mailJSON struct {
	ID        string    `json:"id"`
	Blob      string    `json:"blob"`
	Deposited time.Time `json:"deposited"`
	Expires   time.Time `json:"expires"`
}

type fetchResponse struct {
	Mail []mailJSON `json:"mail"`
	More bool       `json:"more"`
}

func (s *Server) mailboxRoutes(handle func(string, http.HandlerFunc)) map[string]string {
	handle("PUT /v1/users/{name}/prekey", s.withMailbox(s.handlePublishPrekey))
	handle("GET /v1/users/{name}/prekey", s.withMailbox(s.handleGetPrekey))
	handle("POST /v1/mailbox", s.withMailbox(s.handleDeposit))
	handle("POST /v1/users/{name}/mailbox/fetch", s.withMailbox(s.handleFetch))
	handle("POST /v1/users/{name}/mailbox/delete", s.withMailbox(s.handleDeleteMail))
	return map[string]string{
		"/v1/users/{name}/prekey":         "GET, PUT",
		"/v1/mailbox":                     "POST",
		"/v1/users/{name}/mailbox/fetch":  "POST",
		"/v1/users/{name}/mailbox/delete": "POST",
	}
}

func (s *Server) withMailbox(h func(http.ResponseWriter, *http.Request, *MailboxRoutes)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := s.mailbox.Load()
		if m == nil {
			writeError(w, http.StatusNotFound, codeMailboxDisabled, "this registry keeps no mailbox", 0)
			return
		}
		h(w, r, m)
	}
}

// mailboxError answers a mailbox service error: the mailbox's own codes,
// else the registry's.
func (s *Server) mailboxError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ports.ErrMailboxFull):
		writeError(w, http.StatusInsufficientStorage, codeMailboxFull, err.Error(), 0)
	case errors.Is(err, ports.ErrPrekeyMissing):
		writeError(w, http.StatusNotFound, codePrekeyMissing, err.Error(), 0)
	default:
		s.serviceError(w, r, err)
	}
}

func (s *Server) handlePublishPrekey(w http.ResponseWriter, r *http.Request, m *MailboxRoutes) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	info, err := s.svc.Authenticate(r.Context(), name, bearer(r))
	if err != nil {
		s.serviceError(w, r, err)
		return
	}
	var req prekeyJSON
	if !decode(w, r, &req) {
		return
	}
	k, err := req.prekey(name)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, err.Error(), 0)
		return
	}
	if err := m.svc.PublishPrekey(r.Context(), info, k); err != nil {
		s.mailboxError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleGetPrekey(w http.ResponseWriter, r *http.Request, m *MailboxRoutes) {
	name, ok := pathName(w, r)
	if !ok {
		return
	}
	k, err := m.svc.Prekey(r.Context(), name)
	if err != nil {
		s.mailboxError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toPrekeyJSON(k))
}

func (s *Server) handleDeposit(w http.ResponseWriter, r *http.Request, m *MailboxRoutes) {
	from, ok := s.session(w, r)
	if !ok {
		return
	}
	if ok, wait := m.depositRL.allow(hex.EncodeToString(from.TokenHash[:]), time.Now()); !ok {
		writeError(w, http.StatusTooManyRequests, codeRateLimited, "too many deposits from this session; retry later", wait)
		return
	}
	var req depositRequest
	if !decodeLimited(w, r, &req, maxDepositBody) {
		return
	}
	to, err := domain.ParseUsername(req.To)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidName, "to: "+err.Error(), 0)
		return
	}
	blob, err := base64.StdEncoding.DecodeString(req.Blob)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "blob: want standard base64", 0)
		return
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(ports.MaxMailTTL/time.Second) {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, fmt.Sprintf("ttl_seconds: 0 to %d", int64(ports.MaxMailTTL/time.Second)), 0)
		return
	}
	mail, err := m.svc.Deposit(r.Context(), from, to, blob, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		s.mailboxError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, depositResponse{ID: hex.EncodeToString(mail.ID[:]), Expires: mail.Expires.UTC()})
}

// mailboxProof decodes the signed fields of a fetch or delete.
func mailboxProof(w http.ResponseWriter, r *http.Request, action domain.RegistryAction) (domain.RegistryProof, []byte, mailboxProofRequest, bool) {
	name, ok := pathName(w, r)
	if !ok {
		return domain.RegistryProof{}, nil, mailboxProofRequest{}, false
	}
	var req mailboxProofRequest
	if !decode(w, r, &req) {
		return domain.RegistryProof{}, nil, req, false
	}
	key, ch, sig, ok := signedFields(w, req.Key, req.Challenge, req.Signature)
	if !ok {
		return domain.RegistryProof{}, nil, req, false
	}
	return domain.RegistryProof{Action: action, Name: name, Key: key, Challenge: ch}, sig, req, true
}

func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request, m *MailboxRoutes) {
	// Not limited here: each fetch spends a challenge, and those are.
	proof, sig, req, ok := mailboxProof(w, r, domain.ActionMailboxFetch)
	if !ok {
		return
	}
	batch, err := m.svc.Fetch(r.Context(), proof, sig, req.Limit)
	if err != nil {
		s.mailboxError(w, r, err)
		return
	}
	out := fetchResponse{Mail: make([]mailJSON, 0, len(batch.Mail)), More: batch.More}
	size := 0
	for _, mail := range batch.Mail {
		if size += len(mail.Blob); size > m.cfg.MaxFetchBytes && len(out.Mail) > 0 {
			out.More = true
			break
		}
		out.Mail = append(out.Mail, mailJSON{ID: hex.EncodeToString(mail.ID[:]), Blob: base64.StdEncoding.EncodeToString(mail.Blob),
			Deposited: mail.Deposited.UTC(), Expires: mail.Expires.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteMail(w http.ResponseWriter, r *http.Request, m *MailboxRoutes) {
	proof, sig, req, ok := mailboxProof(w, r, domain.ActionMailboxDelete)
	if !ok {
		return
	}
	if len(req.IDs) > ports.MaxFetch {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, fmt.Sprintf("ids: at most %d", ports.MaxFetch), 0)
		return
	}
	ids := make([]ports.MailID, 0, len(req.IDs))
	for _, t := range req.IDs {
		id, err := parseMailID(t)
		if err != nil {
			writeError(w, http.StatusBadRequest, codeInvalidRequest, "ids: want 32 hex digits each", 0)
			return
		}
		ids = append(ids, id)
	}
	if err := m.svc.Delete(r.Context(), proof, sig, ids); err != nil {
		s.mailboxError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
