package jsonrpc

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

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
	return map[string]handler{
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
	var p struct {
		To   *string `json:"to"`
		Text *string `json:"text"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
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
		Limit *int    `json:"limit"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	with, err := parseName("with", p.With)
	if err != nil {
		return nil, err
	}
	limit, err := parseLimit(p.Limit)
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
		To   *string `json:"to"`
		Path *string `json:"path"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
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
