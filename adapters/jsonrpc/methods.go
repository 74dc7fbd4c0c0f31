package jsonrpc

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"unicode/utf8"

	"github.com/chatx/chatx/domain"
)

// Limits of list methods.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// handler runs one method with its raw params and returns the result.
type handler func(ctx context.Context, params json.RawMessage) (any, error)

// methods lists every method the server answers.
func (s *Server) methods() map[string]handler {
	m := map[string]handler{
		"whoami":          s.whoami,
		"listPeers":       s.listPeers,
		"reachability":    s.reachability,
		"send":            s.send,
		"typing":          s.typing,
		"markRead":        s.markRead,
		"history":         s.history,
		"search":          s.search,
		"sendFile":        s.sendFile,
		"acceptTransfer":  s.transferAction(s.client.AcceptTransfer),
		"rejectTransfer":  s.transferAction(s.client.DeclineTransfer),
		"declineTransfer": s.transferAction(s.client.DeclineTransfer),
		"cancelTransfer":  s.transferAction(s.client.CancelTransfer),
		"transfers":       s.transfers,
		"verify":          s.verify,
		"setVerified":     s.setVerified,
		"acceptKeyChange": s.acceptKeyChange,
	}
	maps.Copy(m, s.contactMethods()) // contacts.go
	return s.groupMethods(m)         // groups.go
}

// decodeParams reads params (an object, or absent or null when every field
// is optional) into dst, refusing unknown fields and trailing data.
func decodeParams(raw json.RawMessage, dst any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return invalidParams("params must be an object with named fields")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return invalidParams("invalid params: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// sendParams are the params of send.
type sendParams struct {
	To    *string `json:"to"`
	Group *string `json:"group"`
	Text  *string `json:"text"`
}

// decodeSendParams is decodeParams for send, the method a script calls
// thousands of times a second: params that are an object of only these
// fields, each once, as strings without escapes are read in one pass
// (plainSendParams); anything else goes through decodeParams, so every
// result and every error are the same.
func decodeSendParams(raw json.RawMessage, p *sendParams) error {
	if plainSendParams(raw, p) {
		return nil
	}
	*p = sendParams{}
	return decodeParams(raw, p)
}

// plainSendParams reads raw into p if it is an object of "to", "group"
// and "text" (exact names, each at most once) with plain string values,
// and reports whether it did; p may be partly set when it did not.
func plainSendParams(raw []byte, p *sendParams) bool {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false
	}
	i = skipSpace(raw, i+1)
	for {
		key, j, ok := plainString(raw, i)
		if !ok {
			return false
		}
		i = skipSpace(raw, j)
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		val, j, ok := plainString(raw, skipSpace(raw, i+1))
		if !ok {
			return false
		}
		var dst **string
		switch key {
		case "to":
			dst = &p.To
		case "group":
			dst = &p.Group
		case "text":
			dst = &p.Text
		default:
			return false
		}
		if *dst != nil {
			return false // repeated: encoding/json keeps the last
		}
		*dst = &val
		i = skipSpace(raw, j)
		if i >= len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case '}':
			return skipSpace(raw, i+1) == len(raw)
		default:
			return false
		}
	}
}

// plainString reads the JSON string at raw[i:] if it holds no escape, no
// control character and only valid UTF-8 (so its bytes are its value),
// and returns it and the index after it.
func plainString(raw []byte, i int) (string, int, bool) {
	if i >= len(raw) || raw[i] != '"' {
		return "", 0, false
	}
	n := bytes.IndexByte(raw[i+1:], '"')
	if n < 0 {
		return "", 0, false
	}
	body := raw[i+1 : i+1+n]
	for _, c := range body {
		if c < 0x20 || c == '\\' {
			return "", 0, false
		}
	}
	if !utf8.Valid(body) {
		return "", 0, false
	}
	return string(body), i + 2 + n, true
}

// skipSpace returns the index of the first byte at or after i in raw that
// is not JSON white space.
func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

func parseName(field string, raw *string) (domain.Username, error) {
	if raw == nil {
		return domain.Username{}, invalidParams(fmt.Sprintf("missing %q", field))
	}
	u, err := domain.ParseUsername(*raw)
	if err != nil {
		return domain.Username{}, fmt.Errorf("%s: %w", field, err)
	}
	return u, nil
}

func parseTransferID(raw *string) (domain.TransferID, error) {
	var id domain.TransferID
	if raw == nil {
		return id, invalidParams(`missing "id"`)
	}
	b, err := hex.DecodeString(*raw)
	if err != nil || len(b) != len(id) {
		return id, invalidParams(fmt.Sprintf(`"id" must be %d hex digits`, 2*len(id)))
	}
	copy(id[:], b)
	return id, nil
}

func parseLimit(raw *int) (int, error) {
	switch {
	case raw == nil || *raw == 0:
		return defaultLimit, nil
	case *raw < 0 || *raw > maxLimit:
		return 0, invalidParams(fmt.Sprintf(`"limit" must be between 1 and %d`, maxLimit))
	}
	return *raw, nil
}

func (s *Server) reachability(ctx context.Context, raw json.RawMessage) (any, error) {
	if err := decodeParams(raw, &struct{}{}); err != nil {
		return nil, err
	}
	return viewReachabilityReport(s.client.Reachability(ctx)), nil
}

func (s *Server) whoami(ctx context.Context, raw json.RawMessage) (any, error) {
	if err := decodeParams(raw, &struct{}{}); err != nil {
		return nil, err
	}
	me := s.client.Whoami()
	return whoamiView{Name: me.Name().String(), PeerID: string(me.PeerID()), Fingerprint: me.Fingerprint().String(),
		Endpoints: viewEndpoints(s.client.Endpoints())}, nil
}

func (s *Server) listPeers(ctx context.Context, raw json.RawMessage) (any, error) {
	if err := decodeParams(raw, &struct{}{}); err != nil {
		return nil, err
	}
	peers, err := s.client.Peers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]peerView, 0, len(peers))
	for _, p := range peers {
		out = append(out, viewPeer(p))
	}
	return out, nil
}

func (s *Server) send(ctx context.Context, raw json.RawMessage) (any, error) {
	wait, err := s.startSend(ctx, raw)
	if err != nil {
		return nil, err
	}
	return wait()
}

// startSend checks a send's params and starts it (ports.SendPipeline);
// wait returns its result once the message is stored.
func (s *Server) startSend(ctx context.Context, raw json.RawMessage) (wait func() (any, error), err error) {
	var p sendParams
	if err := decodeSendParams(raw, &p); err != nil {
		return nil, err
	}
	if p.Group != nil && p.To == nil {
		// Sent here, in arrival order; the result is ready at once.
		res, err := s.sendGroup(ctx, p.Group, p.Text)
		if err != nil {
			return nil, err
		}
		return func() (any, error) { return res, nil }, nil
	}
	to, err := parseName("to", p.To)
	if err != nil {
		return nil, err
	}
	if p.Text == nil {
		return nil, invalidParams(`missing "text"`)
	}
	if err := domain.ValidateBody(*p.Text); err != nil {
		return nil, err
	}
	stored, err := s.client.StartSend(ctx, to, *p.Text)
	if err != nil {
		return nil, err
	}
	return func() (any, error) {
		m, err := stored()
		if err != nil {
			return nil, err
		}
		return viewMessage(m), nil
	}, nil
}

func (s *Server) typing(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		To *string `json:"to"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	to, err := parseName("to", p.To)
	if err != nil {
		return nil, err
	}
	return true, s.client.Typing(ctx, to)
}

func (s *Server) markRead(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		With *string `json:"with"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	with, err := parseName("with", p.With)
	if err != nil {
		return nil, err
	}
	return true, s.client.MarkRead(ctx, with)
}

func (s *Server) history(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		With  *string `json:"with"`
		Group *string `json:"group"`
		Limit *int    `json:"limit"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	limit, err := parseLimit(p.Limit)
	if err != nil {
		return nil, err
	}
	if p.Group != nil && p.With == nil {
		return s.groupHistory(ctx, p.Group, limit)
	}
	with, err := parseName("with", p.With)
	if err != nil {
		return nil, err
	}
	ms, err := s.client.History(ctx, with, limit)
	if err != nil {
		return nil, err
	}
	return viewMessages(ms), nil
}

func (s *Server) search(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Text  *string `json:"text"`
		Limit *int    `json:"limit"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	if p.Text == nil || strings.TrimSpace(*p.Text) == "" {
		return nil, invalidParams(`"text" must hold at least one word`)
	}
	if len(*p.Text) > domain.MaxMessageBytes {
		return nil, invalidParams(`"text" is longer than 64 KiB`)
	}
	limit, err := parseLimit(p.Limit)
	if err != nil {
		return nil, err
	}
	ms, err := s.client.Search(ctx, *p.Text, limit)
	if err != nil {
		return nil, err
	}
	return viewMessages(ms), nil
}

func (s *Server) sendFile(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		To    *string `json:"to"`
		Group *string `json:"group"`
		Path  *string `json:"path"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	if p.Group != nil && p.To == nil {
		return s.sendGroupFile(ctx, p.Group, p.Path)
	}
	to, err := parseName("to", p.To)
	if err != nil {
		return nil, err
	}
	if p.Path == nil || *p.Path == "" {
		return nil, invalidParams(`missing "path"`)
	}
	t, err := s.client.SendFile(ctx, to, *p.Path)
	if err != nil {
		return nil, err
	}
	return viewTransfer(t, true), nil
}

func (s *Server) transferAction(do func(context.Context, domain.TransferID) error) handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p struct {
			ID *string `json:"id"`
		}
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		id, err := parseTransferID(p.ID)
		if err != nil {
			return nil, err
		}
		if err := do(ctx, id); err != nil {
			return nil, err
		}
		return true, nil
	}
}

func (s *Server) transfers(ctx context.Context, raw json.RawMessage) (any, error) {
	if err := decodeParams(raw, &struct{}{}); err != nil {
		return nil, err
	}
	ts, err := s.client.Transfers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]transferView, 0, len(ts))
	for _, t := range ts {
		out = append(out, viewTransfer(t, true))
	}
	return out, nil
}

func (s *Server) verify(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Name *string `json:"name"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	name, err := parseName("name", p.Name)
	if err != nil {
		return nil, err
	}
	sv, err := s.client.Safety(ctx, name)
	if err != nil {
		return nil, err
	}
	return viewSafety(sv), nil
}

func (s *Server) setVerified(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Name     *string `json:"name"`
		Verified *bool   `json:"verified"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	name, err := parseName("name", p.Name)
	if err != nil {
		return nil, err
	}
	if p.Verified == nil {
		return nil, invalidParams(`missing "verified"`)
	}
	return true, s.client.SetVerified(ctx, name, *p.Verified)
}

func (s *Server) acceptKeyChange(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Name *string `json:"name"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	name, err := parseName("name", p.Name)
	if err != nil {
		return nil, err
	}
	return true, s.client.AcceptKeyChange(ctx, name)
}
