package jsonrpc

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Error codes of groups (docs/jsonrpc.md, "Groups"), a block of their own.
const (
	CodeUnknownGroup   = -32030 // domain.ErrUnknownGroup
	CodeNotGroupMember = -32031 // domain.ErrNotGroupMember
	CodeNotGroupAdmin  = -32032 // domain.ErrNotGroupAdmin
	CodeGroupFull      = -32033 // domain.ErrGroupFull
	CodeBadGroupChange = -32034 // domain.ErrBadGroupEntry: the change does not apply
)

func init() {
	// Appended, not listed in codeMap, so the group work stays in this file.
	codeMap = append(codeMap, []struct {
		err  error
		code int
	}{
		{domain.ErrUnknownGroup, CodeUnknownGroup},
		{domain.ErrNotGroupMember, CodeNotGroupMember},
		{domain.ErrNotGroupAdmin, CodeNotGroupAdmin},
		{domain.ErrGroupFull, CodeGroupFull},
		{domain.ErrBadGroupEntry, CodeBadGroupChange},
	}...)
	for _, m := range []string{"createGroup", "addMember", "removeMember", "leaveGroup", "renameGroup", "promoteMember", "markGroupRead"} {
		orderedMethods[m] = true
	}
}

// groupMethods are the group methods; methods() adds them.
func (s *Server) groupMethods(m map[string]handler) map[string]handler {
	m["createGroup"] = s.createGroup
	m["groups"] = s.groups
	m["groupInfo"] = s.groupInfo
	m["addMember"] = s.memberAction(s.client.AddMember)
	m["removeMember"] = s.memberAction(s.client.RemoveMember)
	m["promoteMember"] = s.memberAction(s.client.PromoteMember)
	m["leaveGroup"] = s.groupAction(s.client.LeaveGroup)
	m["renameGroup"] = s.renameGroup
	m["groupDeliveries"] = s.groupDeliveries
	m["markGroupRead"] = s.groupAction(s.client.MarkGroupRead)
	return m
}

type groupView struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Epoch   string            `json:"epoch"`
	Member  bool              `json:"member"`
	Unread  int               `json:"unread"`
	Members []groupMemberView `json:"members"`
}

type groupMemberView struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Admin       bool   `json:"admin"`
}

func viewGroup(v ports.GroupView) groupView {
	g := v.Group
	out := groupView{ID: g.ID().String(), Name: g.Name(), Epoch: g.Epoch().String(), Member: v.Member, Unread: v.Unread,
		Members: []groupMemberView{}}
	for _, m := range g.Members() {
		out.Members = append(out.Members, groupMemberView{Name: m.Name().String(), Fingerprint: m.Fingerprint().String(), Admin: g.IsAdmin(m.Name())})
	}
	return out
}

type groupMessageView struct {
	ID        string `json:"id"`
	Group     string `json:"group"`
	From      string `json:"from"`
	Direction string `json:"direction"`
	SentAt    string `json:"sentAt"`
	Text      string `json:"text"`
	Epoch     string `json:"epoch"`
}

func viewGroupMessage(m domain.GroupMessage) groupMessageView {
	return groupMessageView{ID: m.ID().String(), Group: m.Group().String(), From: m.From().String(),
		Direction: m.Direction().String(), SentAt: formatTime(m.SentAt()), Text: m.Body(), Epoch: m.Epoch().String()}
}

type groupDeliveryView struct {
	Group     string `json:"group"`
	ID        string `json:"id"`
	Member    string `json:"member"`
	State     string `json:"state"`
	Delivered int    `json:"delivered"`
	Of        int    `json:"of"`
}

// notifyGroup sends the notification of a group event; false if ev is not one.
func (s *Server) notifyGroup(ev ports.Event) bool {
	switch e := ev.(type) {
	case ports.GroupMessageEvent:
		s.notify("message", viewGroupMessage(e.Message))
	case ports.GroupDeliveryEvent:
		s.notify("groupDelivery", groupDeliveryView{Group: e.Group.String(), ID: e.ID.String(), Member: e.Member.String(),
			State: e.State.String(), Delivered: e.Delivered, Of: e.Of})
	case ports.GroupChangedEvent:
		s.notify("group", viewGroup(ports.GroupView{Group: e.Group, Member: e.Member}))
	case ports.GroupFileEvent:
		s.notify("groupFile", struct {
			Group    string `json:"group"`
			Transfer string `json:"transfer"`
			From     string `json:"from"`
		}{e.Group.String(), e.Transfer.String(), e.From.String()})
	default:
		return false
	}
	return true
}

func parseGroupID(field string, raw *string) (domain.GroupID, error) {
	if raw == nil {
		return domain.GroupID{}, invalidParams(fmt.Sprintf("missing %q", field))
	}
	id, err := domain.ParseGroupID(*raw)
	if err != nil {
		return id, invalidParams(fmt.Sprintf("%q must be 32 hex digits", field))
	}
	return id, nil
}

func (s *Server) createGroup(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		Name    *string  `json:"name"`
		Members []string `json:"members"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	if p.Name == nil {
		return nil, invalidParams(`missing "name"`)
	}
	var members []domain.Username
	for _, m := range p.Members {
		u, err := parseName("members", &m)
		if err != nil {
			return nil, err
		}
		members = append(members, u)
	}
	g, err := s.client.CreateGroup(ctx, *p.Name, members)
	if err != nil {
		return nil, err
	}
	return struct {
		ID string `json:"id"`
	}{g.ID().String()}, nil
}

func (s *Server) groups(ctx context.Context, raw json.RawMessage) (any, error) {
	if err := decodeParams(raw, &struct{}{}); err != nil {
		return nil, err
	}
	gs, err := s.client.Groups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]groupView, 0, len(gs))
	for _, g := range gs {
		out = append(out, viewGroup(g))
	}
	return out, nil
}

func (s *Server) groupInfo(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		ID *string `json:"id"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	id, err := parseGroupID("id", p.ID)
	if err != nil {
		return nil, err
	}
	g, err := s.client.GroupInfo(ctx, id)
	if err != nil {
		return nil, err
	}
	return viewGroup(g), nil
}

func (s *Server) memberAction(do func(context.Context, domain.GroupID, domain.Username) error) handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p struct {
			ID   *string `json:"id"`
			Name *string `json:"name"`
		}
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		id, err := parseGroupID("id", p.ID)
		if err != nil {
			return nil, err
		}
		name, err := parseName("name", p.Name)
		if err != nil {
			return nil, err
		}
		if err := do(ctx, id, name); err != nil {
			return nil, err
		}
		return okView{OK: true}, nil
	}
}

type okView struct {
	OK bool `json:"ok"`
}

// groupAction is a method of {id} answering {ok}.
func (s *Server) groupAction(do func(context.Context, domain.GroupID) error) handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var p struct {
			ID *string `json:"id"`
		}
		if err := decodeParams(raw, &p); err != nil {
			return nil, err
		}
		id, err := parseGroupID("id", p.ID)
		if err != nil {
			return nil, err
		}
		if err := do(ctx, id); err != nil {
			return nil, err
		}
		return okView{OK: true}, nil
	}
}

func (s *Server) renameGroup(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		ID   *string `json:"id"`
		Name *string `json:"name"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	id, err := parseGroupID("id", p.ID)
	if err != nil {
		return nil, err
	}
	if p.Name == nil {
		return nil, invalidParams(`missing "name"`)
	}
	if err := s.client.RenameGroup(ctx, id, *p.Name); err != nil {
		return nil, err
	}
	return okView{OK: true}, nil
}

func (s *Server) groupDeliveries(ctx context.Context, raw json.RawMessage) (any, error) {
	var p struct {
		ID      *string `json:"id"`
		Message *string `json:"message"`
	}
	if err := decodeParams(raw, &p); err != nil {
		return nil, err
	}
	id, err := parseGroupID("id", p.ID)
	if err != nil {
		return nil, err
	}
	if p.Message == nil {
		return nil, invalidParams(`missing "message"`)
	}
	mid, err := domain.ParseMessageID(*p.Message)
	if err != nil {
		return nil, invalidParams(`"message" must be 32 hex digits`)
	}
	ds, err := s.client.GroupDeliveries(ctx, id, mid)
	if err != nil {
		return nil, err
	}
	type row struct {
		Member string `json:"member"`
		State  string `json:"state"`
	}
	out := struct {
		Delivered int   `json:"delivered"`
		Of        int   `json:"of"`
		Members   []row `json:"members"`
	}{Of: len(ds), Members: []row{}}
	for _, d := range ds {
		if d.State == domain.MessageDelivered || d.State == domain.MessageRead {
			out.Delivered++
		}
		out.Members = append(out.Members, row{d.Member.String(), d.State.String()})
	}
	return out, nil
}

// sendGroup is send with "group" instead of "to".
func (s *Server) sendGroup(ctx context.Context, group *string, text *string) (any, error) {
	id, err := parseGroupID("group", group)
	if err != nil {
		return nil, err
	}
	if text == nil {
		return nil, invalidParams(`missing "text"`)
	}
	if err := domain.ValidateBody(*text); err != nil {
		return nil, err
	}
	m, err := s.client.SendGroup(ctx, id, *text)
	if err != nil {
		return nil, err
	}
	return viewGroupMessage(m), nil
}

// sendGroupFile is sendFile with "group" instead of "to": one transfer per member.
func (s *Server) sendGroupFile(ctx context.Context, group *string, path *string) (any, error) {
	id, err := parseGroupID("group", group)
	if err != nil {
		return nil, err
	}
	if path == nil || *path == "" {
		return nil, invalidParams(`missing "path"`)
	}
	ts, err := s.client.SendGroupFile(ctx, id, *path)
	if len(ts) == 0 && err != nil {
		return nil, err
	}
	out := struct {
		Transfers []transferView `json:"transfers"`
		Failed    string         `json:"failed,omitempty"`
	}{Transfers: []transferView{}}
	for _, t := range ts {
		out.Transfers = append(out.Transfers, viewTransfer(t, true))
	}
	if err != nil {
		out.Failed = err.Error()
	}
	return out, nil
}

// groupHistory is history with "group" instead of "with".
func (s *Server) groupHistory(ctx context.Context, group *string, limit int) (any, error) {
	id, err := parseGroupID("group", group)
	if err != nil {
		return nil, err
	}
	ms, err := s.client.GroupHistory(ctx, id, limit)
	if err != nil {
		return nil, err
	}
	out := make([]groupMessageView, 0, len(ms))
	for _, m := range ms {
		out = append(out, viewGroupMessage(m))
	}
	return out, nil
}
