package jsonrpc

import (
	"context"
	"encoding/json"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// contactMethods are the methods about contacts, message requests,
// blocking and status (docs/jsonrpc.md, "Contacts and requests").
func (s *Server) contactMethods() map[string]handler {
	return map[string]handler{
		"contacts":       s.contacts,
		"requests":       s.requests,
		"acceptRequest":  s.nameAction(s.client.AcceptRequest),
		"declineRequest": s.nameAction(s.client.DeclineRequest),
		"block":          s.nameAction(s.client.Block),
		"unblock":        s.nameAction(s.client.Unblock),
		"addContact":     s.nameAction(s.client.AddContact),
		"setNickname":    s.setNickname,
		"setStatus":      s.setStatus,
	}
}

// contactView is one contact as the contacts method lists it.
type contactView struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Nickname    string `json:"nickname"`
	Verified    bool   `json:"verified"`
}

// requestView is a stranger's request (the requests method, the request
// notification).
type requestView struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Messages    int    `json:"messages"`
	Offers      int    `json:"offers"`
	Bytes       int64  `json:"bytes"`
	First       string `json:"first"`
	Last        string `json:"last"`
	Preview     string `json:"preview"`
}

// contactEventView is the contact notification.
type contactEventView struct {
	Name       string `json:"name"`
	Relation   string `json:"relation"`
	Nickname   string `json:"nickname"`
	Status     string `json:"status"`
	StatusText string `json:"statusText"`
}

// refusedView is the refused notification.
type refusedView struct {
	Peer         string `json:"peer"`
	Reason       string `json:"reason"`
	RetryAfterMs int64  `json:"retryAfterMs"`
}

func viewRequest(r ports.RequestView) requestView {
	q := r.Request
	return requestView{Name: q.From.Name().String(), Fingerprint: q.From.Fingerprint().String(),
		Messages: q.Items - q.Offers, Offers: q.Offers, Bytes: q.Bytes,
		First: q.First.UTC().Format(time.RFC3339Nano), Last: q.Last.UTC().Format(time.RFC3339Nano), Preview: r.Preview}
}

func viewContactEvent(e ports.ContactEvent) contactEventView {
	return contactEventView{Name: e.Name.String(), Relation: e.Relation.String(), Nickname: e.Nickname,
		Status: e.Status.Availability.String(), StatusText: e.Status.Text}
}

func (s *Server) contacts(ctx context.Context, raw json.RawMessage) (any, error) {
	if err := decodeParams(raw, &struct{}{}); err != nil {
		return nil, err
	}
	cs, err := s.client.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]contactView, 0, len(cs))
	for _, c := range cs {
		out = append(out, contactView{Name: c.Identity.Name().String(), Fingerprint: c.Identity.Fingerprint().String(),
			Nickname: c.Nickname, Verified: c.Verified})
	}
	return out, nil
}

func (s *Server) requests(ctx context.Context, raw json.RawMessage) (any, error) {
	if err := decodeParams(raw, &struct{}{}); err != nil {
		return nil, err
	}
	rs, err := s.client.Requests(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]requestView, 0, len(rs))
	for _, r := range rs {
		out = append(out, viewRequest(r))
	}
	return out, nil
}

// nameAction is a method taking {name} and answering true.
func (s *Server) nameAction(act func(context.Context, domain.Username) error) handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
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
		if err := act(ctx, name); err != nil {
			return nil, err
		}
		return true, nil
	}
}

func (s *Server) setNickname(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Name     *string `json:"name"`
		Nickname *string `json:"nickname"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	name, err := parseName("name", p.Name)
	if err != nil {
		return nil, err
	}
	if p.Nickname == nil {
		return nil, invalidParams(`missing "nickname"`)
	}
	if err := s.client.SetNickname(ctx, name, *p.Nickname); err != nil {
		return nil, err
	}
	return true, nil
}

func (s *Server) setStatus(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Status *string `json:"status"`
		Text   string  `json:"text"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	if p.Status == nil {
		return nil, invalidParams(`missing "status"`)
	}
	a, err := domain.ParseAvailability(*p.Status)
	if err != nil {
		return nil, err
	}
	if err := s.client.SetStatus(ctx, domain.Status{Availability: a, Text: p.Text}); err != nil {
		return nil, err
	}
	return true, nil
}
