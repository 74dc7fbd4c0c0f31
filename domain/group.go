package domain

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds of a group.
const (
	// MaxGroupMembers bounds the members of a group (the creator included).
	MaxGroupMembers = 100
	// MaxGroupNameBytes bounds a group's display name (UTF-8 bytes).
	MaxGroupNameBytes = 128
	// MaxGroupLogEntries bounds the entries a group's log holds (canonical
	// or not): beyond, new entries are refused.
	MaxGroupLogEntries = 4096
)

// Errors of groups.
var (
	ErrNotGroupMember = errors.New("not a member of the group")
	ErrNotGroupAdmin  = errors.New("not an admin of the group")
	ErrGroupFull      = errors.New("group is full")
	ErrBadGroupEntry  = errors.New("invalid group log entry")
	ErrUnknownGroup   = errors.New("unknown group")
)

// GroupID is a random 128-bit identifier chosen by a group's creator.
type GroupID [16]byte

// NewGroupID draws a random ID.
func NewGroupID() GroupID {
	var id GroupID
	if _, err := rand.Read(id[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return id
}

// ParseGroupID reads the hex form of an ID.
func ParseGroupID(s string) (GroupID, error) {
	var id GroupID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: group id %q", ErrUnknownGroup, s)
	}
	copy(id[:], b)
	return id, nil
}

func (id GroupID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID.
func (id GroupID) IsZero() bool { return id == GroupID{} }

// Epoch names a state of a group's membership: the hash of the entry at the
// head of its log. The zero epoch is "before the group was created".
type Epoch [32]byte

func (e Epoch) String() string { return hex.EncodeToString(e[:]) }

// Short is the first 8 hex digits, for logs and status lines.
func (e Epoch) Short() string { return e.String()[:8] }

// IsZero reports whether e is the zero epoch.
func (e Epoch) IsZero() bool { return e == Epoch{} }

// GroupOp is what a log entry does to a group.
type GroupOp uint8

// Group operations. Their numbers are signed and on the wire
// (docs/peer-protocol.md): never renumber.
const (
	GroupCreate  GroupOp = 1 // the first entry: Name, Members (besides the author)
	GroupAdd     GroupOp = 2 // an admin adds Members
	GroupRemove  GroupOp = 3 // an admin removes Members
	GroupLeave   GroupOp = 4 // the author leaves (signed by the author itself)
	GroupPromote GroupOp = 5 // an admin makes Members admins
	GroupRename  GroupOp = 6 // an admin sets Name
)

var groupOpNames = map[GroupOp]string{
	GroupCreate: "create", GroupAdd: "add", GroupRemove: "remove", GroupLeave: "leave",
	GroupPromote: "promote", GroupRename: "rename",
}

func (o GroupOp) String() string {
	if n, ok := groupOpNames[o]; ok {
		return n
	}
	return fmt.Sprintf("GroupOp(%d)", uint8(o))
}

// groupEntryContext separates the signatures of group log entries from
// every other signature made with an identity key.
const groupEntryContext = "chatx-group-entry-v1\x00"

// GroupEntry is one signed change of a group's membership. Entries form a
// hash chain: each names the hash of the entry before it (Prev), the first
// (GroupCreate) names the zero epoch.
type GroupEntry struct {
	group   GroupID
	prev    Epoch
	op      GroupOp
	at      time.Time
	author  Identity
	members []Identity
	name    string
	sig     []byte
	hash    Epoch
}

// NewGroupEntry makes an entry and signs it with the author's key. It checks
// the entry's shape, not whether the author may make it (that depends on the
// state it is applied to: Group.apply).
func NewGroupEntry(author LocalIdentity, group GroupID, prev Epoch, op GroupOp, at time.Time, members []Identity, name string) (GroupEntry, error) {
	e := GroupEntry{group: group, prev: prev, op: op, at: at.UTC().Truncate(time.Microsecond), author: author.Identity,
		members: append([]Identity(nil), members...), name: name}
	if err := e.checkShape(); err != nil {
		return GroupEntry{}, err
	}
	e.sig = author.Sign(e.SigningBytes())
	e.hash = e.computeHash()
	return e, nil
}

// RestoreGroupEntry rebuilds an entry received from a peer or read from a
// store, checking its shape and its author's signature.
func RestoreGroupEntry(group GroupID, prev Epoch, op GroupOp, at time.Time, author Identity, members []Identity, name string, sig []byte) (GroupEntry, error) {
	e := GroupEntry{group: group, prev: prev, op: op, at: at.UTC(), author: author,
		members: append([]Identity(nil), members...), name: name, sig: append([]byte(nil), sig...)}
	if err := e.checkShape(); err != nil {
		return GroupEntry{}, err
	}
	if err := Verify(author.PublicKey(), e.SigningBytes(), e.sig); err != nil {
		return GroupEntry{}, fmt.Errorf("%w: %s by %s: %w", ErrBadGroupEntry, op, author.Name(), err)
	}
	e.hash = e.computeHash()
	return e, nil
}

func (e GroupEntry) checkShape() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s: %s", ErrBadGroupEntry, e.op, why) }
	if e.group.IsZero() {
		return bad("zero group id")
	}
	if e.author.IsZero() {
		return bad("no author")
	}
	if (e.op == GroupCreate) != e.prev.IsZero() {
		return bad("only the create entry has no previous entry")
	}
	switch e.op {
	case GroupCreate:
		if len(e.members) > MaxGroupMembers-1 {
			return fmt.Errorf("%w: %d members", ErrGroupFull, len(e.members)+1)
		}
		return validGroupName(e.name)
	case GroupAdd, GroupRemove, GroupPromote:
		if len(e.members) == 0 {
			return bad("names nobody")
		}
		if len(e.members) > MaxGroupMembers {
			return fmt.Errorf("%w: %d members", ErrGroupFull, len(e.members))
		}
		if e.name != "" {
			return bad("carries a name")
		}
	case GroupLeave:
		if len(e.members) != 0 || e.name != "" {
			return bad("carries members or a name")
		}
	case GroupRename:
		if len(e.members) != 0 {
			return bad("carries members")
		}
		return validGroupName(e.name)
	default:
		return bad("unknown operation")
	}
	seen := make(map[string]bool, len(e.members))
	for _, m := range e.members {
		if m.IsZero() {
			return bad("empty member")
		}
		if seen[m.Name().Key()] {
			return bad("names " + m.Name().String() + " twice")
		}
		seen[m.Name().Key()] = true
	}
	return nil
}

func validGroupName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return fmt.Errorf("%w: empty group name", ErrBadGroupEntry)
	case len(name) > MaxGroupNameBytes:
		return fmt.Errorf("%w: group name of %d bytes", ErrBadGroupEntry, len(name))
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: group name is not UTF-8", ErrBadGroupEntry)
	}
	return nil
}

// SigningBytes is what the author signs (docs/peer-protocol.md, "Group log
// entries"): the context string, then every field in a fixed layout.
func (e GroupEntry) SigningBytes() []byte {
	b := make([]byte, 0, 128+len(e.members)*64+len(e.name))
	b = append(b, groupEntryContext...)
	b = append(b, e.group[:]...)
	b = append(b, e.prev[:]...)
	b = append(b, byte(e.op))
	b = binary.BigEndian.AppendUint64(b, uint64(e.at.UnixMicro()))
	b = appendIdentity(b, e.author)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.members)))
	for _, m := range e.members {
		b = appendIdentity(b, m)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.name)))
	return append(b, e.name...)
}

func appendIdentity(b []byte, id Identity) []byte {
	n := id.Name().String()
	b = append(b, byte(len(n)))
	b = append(b, n...)
	return append(b, id.key...)
}

// computeHash is SHA-256 of the signing bytes and the signature.
func (e GroupEntry) computeHash() Epoch {
	h := sha256.New()
	h.Write(e.SigningBytes())
	h.Write(e.sig)
	var out Epoch
	copy(out[:], h.Sum(nil))
	return out
}

func (e GroupEntry) Group() GroupID             { return e.group }
func (e GroupEntry) Prev() Epoch                { return e.prev }
func (e GroupEntry) Op() GroupOp                { return e.op }
func (e GroupEntry) At() time.Time              { return e.at }
func (e GroupEntry) Author() Identity           { return e.author }
func (e GroupEntry) Members() []Identity        { return append([]Identity(nil), e.members...) }
func (e GroupEntry) Name() string               { return e.name }
func (e GroupEntry) Signature() []byte          { return append([]byte(nil), e.sig...) }
func (e GroupEntry) Hash() Epoch                { return e.hash }
func (e GroupEntry) IsZero() bool               { return e.hash.IsZero() }
func (e GroupEntry) String() string             { return e.op.String() + " by " + e.author.Name().String() }
func (e GroupEntry) lessThan(o GroupEntry) bool { return bytes.Compare(e.hash[:], o.hash[:]) < 0 }

// Group is the membership of a group at one epoch: what its log's canonical
// chain adds up to.
type Group struct {
	id      GroupID
	name    string
	members []Identity // in the order they joined
	admins  map[string]bool
	epoch   Epoch
	created time.Time
}

func (g Group) ID() GroupID             { return g.id }
func (g Group) Name() string            { return g.name }
func (g Group) Epoch() Epoch            { return g.epoch }
func (g Group) Created() time.Time      { return g.created }
func (g Group) Members() []Identity     { return append([]Identity(nil), g.members...) }
func (g Group) Size() int               { return len(g.members) }
func (g Group) IsZero() bool            { return g.id.IsZero() }
func (g Group) IsAdmin(n Username) bool { return g.admins[n.Key()] }

// Member returns the identity of a member by name.
func (g Group) Member(n Username) (Identity, bool) {
	for _, m := range g.members {
		if m.Name().Equal(n) {
			return m, true
		}
	}
	return Identity{}, false
}

// IsMember reports whether n is a member.
func (g Group) IsMember(n Username) bool { _, ok := g.Member(n); return ok }

// Admins lists the admins in member order.
func (g Group) Admins() []Username {
	var out []Username
	for _, m := range g.members {
		if g.admins[m.Name().Key()] {
			out = append(out, m.Name())
		}
	}
	return out
}

func (g Group) clone() Group {
	c := g
	c.members = append([]Identity(nil), g.members...)
	c.admins = make(map[string]bool, len(g.admins))
	for k, v := range g.admins {
		c.admins[k] = v
	}
	return c
}

// apply returns the state after e, or why e is not allowed in state g.
func (g Group) apply(e GroupEntry) (Group, error) {
	if e.prev != g.epoch {
		return g, fmt.Errorf("%w: %s does not follow epoch %s", ErrBadGroupEntry, e, g.epoch.Short())
	}
	n := g.clone()
	n.epoch = e.hash
	if e.op == GroupCreate {
		n.id, n.name, n.created = e.group, e.name, e.at
		n.members = append([]Identity{e.author}, e.members...)
		n.admins[e.author.Name().Key()] = true
		for _, m := range e.members {
			if m.Name().Equal(e.author.Name()) {
				return g, fmt.Errorf("%w: create names its author as a member", ErrBadGroupEntry)
			}
		}
		return n, nil
	}
	if e.group != g.id {
		return g, fmt.Errorf("%w: entry of group %s", ErrBadGroupEntry, e.group)
	}
	author, ok := g.Member(e.author.Name())
	if !ok || !author.SameKey(e.author.key) {
		return g, fmt.Errorf("%w: %s by %s", ErrNotGroupMember, e.op, e.author.Name())
	}
	if e.op != GroupLeave && !g.IsAdmin(e.author.Name()) {
		return g, fmt.Errorf("%w: %s by %s", ErrNotGroupAdmin, e.op, e.author.Name())
	}
	switch e.op {
	case GroupAdd:
		if len(g.members)+len(e.members) > MaxGroupMembers {
			return g, fmt.Errorf("%w: %d members", ErrGroupFull, len(g.members)+len(e.members))
		}
		for _, m := range e.members {
			if g.IsMember(m.Name()) {
				return g, fmt.Errorf("%w: %s is a member already", ErrBadGroupEntry, m.Name())
			}
		}
		n.members = append(n.members, e.members...)
	case GroupRemove:
		for _, m := range e.members {
			if !g.IsMember(m.Name()) || m.Name().Equal(e.author.Name()) {
				return g, fmt.Errorf("%w: cannot remove %s", ErrBadGroupEntry, m.Name())
			}
			n.remove(m.Name())
		}
	case GroupLeave:
		n.remove(e.author.Name())
	case GroupPromote:
		for _, m := range e.members {
			if !g.IsMember(m.Name()) || g.IsAdmin(m.Name()) {
				return g, fmt.Errorf("%w: cannot promote %s", ErrBadGroupEntry, m.Name())
			}
			n.admins[m.Name().Key()] = true
		}
	case GroupRename:
		if e.name == g.name {
			return g, fmt.Errorf("%w: the group has that name already", ErrBadGroupEntry)
		}
		n.name = e.name
	}
	return n, nil
}

func (g *Group) remove(name Username) {
	kept := g.members[:0]
	for _, m := range g.members {
		if !m.Name().Equal(name) {
			kept = append(kept, m)
		}
	}
	g.members = kept
	delete(g.admins, name.Key())
}

// GroupLog is every entry known of one group and the state they add up to.
//
// The canonical chain starts at the create entry and, at each entry,
// continues with the child (an entry naming it as Prev) that is valid in
// the state reached and has the lowest hash (bytewise). Children that lose
// are kept — their authors re-issue what they still mean on the new head
// (Rebase) — and so are entries whose Prev is not known yet: they join the
// chain when it arrives. Whatever order entries arrive in, two logs that
// hold the same entries have the same chain, state and epoch.
type GroupLog struct {
	create   GroupEntry
	entries  map[Epoch]GroupEntry
	children map[Epoch][]Epoch
	chain    []Epoch
	onChain  map[Epoch]bool
	state    Group
}

// NewGroupLog starts a log from a group's create entry.
func NewGroupLog(create GroupEntry) (*GroupLog, error) {
	if create.op != GroupCreate || create.IsZero() {
		return nil, fmt.Errorf("%w: a log starts with a create entry", ErrBadGroupEntry)
	}
	l := &GroupLog{create: create, entries: map[Epoch]GroupEntry{create.hash: create}, children: map[Epoch][]Epoch{}}
	l.recompute()
	if l.state.IsZero() {
		return nil, fmt.Errorf("%w: create entry does not apply", ErrBadGroupEntry)
	}
	return l, nil
}

// RebuildGroupLog makes a log from entries in any order (from a store or a
// peer); one of them must be the create entry.
func RebuildGroupLog(entries []GroupEntry) (*GroupLog, error) {
	var l *GroupLog
	for _, e := range entries {
		if e.op == GroupCreate {
			if l != nil && e.hash != l.create.hash {
				return nil, fmt.Errorf("%w: two create entries", ErrBadGroupEntry)
			}
			var err error
			if l, err = NewGroupLog(e); err != nil {
				return nil, err
			}
		}
	}
	if l == nil {
		return nil, fmt.Errorf("%w: no create entry", ErrBadGroupEntry)
	}
	if _, err := l.Add(entries...); err != nil {
		return nil, err
	}
	return l, nil
}

// Add merges entries (already signature-checked by their constructors) and
// reports whether the state changed. Entries of another group, a second
// create entry, or entries beyond MaxGroupLogEntries are refused with an
// error after the others are merged; known entries are ignored.
func (l *GroupLog) Add(entries ...GroupEntry) (changed bool, err error) {
	added := false
	for _, e := range entries {
		if _, ok := l.entries[e.hash]; ok {
			continue
		}
		switch {
		case e.IsZero():
			err = errors.Join(err, fmt.Errorf("%w: unsigned entry", ErrBadGroupEntry))
			continue
		case e.group != l.create.group:
			err = errors.Join(err, fmt.Errorf("%w: entry of group %s in the log of %s", ErrBadGroupEntry, e.group, l.create.group))
			continue
		case e.op == GroupCreate:
			err = errors.Join(err, fmt.Errorf("%w: a second create entry", ErrBadGroupEntry))
			continue
		case len(l.entries) >= MaxGroupLogEntries:
			err = errors.Join(err, fmt.Errorf("%w: log holds %d entries", ErrTooLarge, len(l.entries)))
			continue
		}
		l.entries[e.hash] = e
		l.children[e.prev] = append(l.children[e.prev], e.hash)
		added = true
	}
	if added {
		before := l.state.epoch
		l.recompute()
		changed = l.state.epoch != before
	}
	return changed, err
}

// recompute walks the canonical chain from the create entry.
func (l *GroupLog) recompute() {
	st, err := Group{admins: map[string]bool{}}.apply(l.create)
	if err != nil {
		l.state, l.chain, l.onChain = Group{}, nil, nil
		return
	}
	chain := []Epoch{l.create.hash}
	for {
		kids := make([]GroupEntry, 0, len(l.children[st.epoch]))
		for _, h := range l.children[st.epoch] {
			kids = append(kids, l.entries[h])
		}
		sort.Slice(kids, func(i, j int) bool { return kids[i].lessThan(kids[j]) })
		next := false
		for _, k := range kids {
			if n, err := st.apply(k); err == nil {
				st, next = n, true
				chain = append(chain, k.hash)
				break
			}
		}
		if !next {
			break
		}
	}
	l.onChain = make(map[Epoch]bool, len(chain))
	for _, h := range chain {
		l.onChain[h] = true
	}
	l.state, l.chain = st, chain
}

// State is the membership at the head of the canonical chain.
func (l *GroupLog) State() Group { return l.state.clone() }

// ID is the group's ID.
func (l *GroupLog) ID() GroupID { return l.create.group }

// Head is the epoch of the canonical chain's last entry.
func (l *GroupLog) Head() Epoch { return l.state.epoch }

// Has reports whether the log holds the entry with hash e (canonical or not).
func (l *GroupLog) Has(e Epoch) bool { _, ok := l.entries[e]; return ok }

// OnChain reports whether e is the hash of an entry of the canonical chain.
func (l *GroupLog) OnChain(e Epoch) bool { return l.onChain[e] }

// Chain returns the canonical chain, create entry first.
func (l *GroupLog) Chain() []GroupEntry {
	out := make([]GroupEntry, len(l.chain))
	for i, h := range l.chain {
		out[i] = l.entries[h]
	}
	return out
}

// Entries returns every entry held, canonical chain first, then the others
// by hash: what a peer needs to reach the same state.
func (l *GroupLog) Entries() []GroupEntry {
	out := l.Chain()
	var rest []GroupEntry
	for h, e := range l.entries {
		if !l.OnChain(h) {
			rest = append(rest, e)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].lessThan(rest[j]) })
	return append(out, rest...)
}

// Rebase lists what author's entries off the canonical chain still mean
// in the current state, as the (op, members, name) to sign again on the
// head: an add of people who are not members yet, a removal or promotion
// of people who still can be, a rename to a name the group does not have.
// An entry is listed once its ancestry reaches the chain (it, or an entry
// before it, lost a fork); those waiting for a missing entry are not. They
// are listed oldest first, to be signed again in that order.
func (l *GroupLog) Rebase(author Username) []GroupChange {
	st := l.state
	var out []GroupChange
	for h, e := range l.entries {
		if l.OnChain(h) || !l.connected(e) || !e.author.Name().Equal(author) {
			continue
		}
		var still []Identity
		for _, m := range e.members {
			switch e.op {
			case GroupAdd:
				if !st.IsMember(m.Name()) {
					still = append(still, m)
				}
			case GroupRemove:
				if st.IsMember(m.Name()) {
					still = append(still, m)
				}
			case GroupPromote:
				if st.IsMember(m.Name()) && !st.IsAdmin(m.Name()) {
					still = append(still, m)
				}
			}
		}
		switch {
		case len(still) > 0:
			out = append(out, GroupChange{Op: e.op, Members: still, at: e.at, hash: h})
		case e.op == GroupRename && e.name != st.name:
			out = append(out, GroupChange{Op: e.op, Name: e.name, at: e.at, hash: h})
		case e.op == GroupLeave && st.IsMember(author):
			out = append(out, GroupChange{Op: e.op, at: e.at, hash: h})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return bytes.Compare(out[i].hash[:], out[j].hash[:]) < 0
	})
	return out
}

// connected reports whether e's ancestors lead to the canonical chain.
func (l *GroupLog) connected(e GroupEntry) bool {
	for range len(l.entries) {
		if l.OnChain(e.prev) {
			return true
		}
		p, ok := l.entries[e.prev]
		if !ok {
			return false
		}
		e = p
	}
	return false
}

// GroupChange is a membership change to sign on the head of a log.
type GroupChange struct {
	Op      GroupOp
	Members []Identity
	Name    string
	at      time.Time
	hash    Epoch
}

// Replaces is the hash of the entry this change re-issues (zero: a new change).
func (c GroupChange) Replaces() Epoch { return c.hash }

// Append signs change on the head of the log as author and adds it. It
// checks that the change applies (author's rights, members) before signing.
func (l *GroupLog) Append(author LocalIdentity, c GroupChange, at time.Time) (GroupEntry, error) {
	e, err := NewGroupEntry(author, l.create.group, l.state.epoch, c.Op, at, c.Members, c.Name)
	if err != nil {
		return GroupEntry{}, err
	}
	if _, err := l.state.apply(e); err != nil {
		return GroupEntry{}, err
	}
	if _, err := l.Add(e); err != nil {
		return GroupEntry{}, err
	}
	return e, nil
}

// GroupMessage is one message in a group conversation.
type GroupMessage struct {
	id     MessageID
	group  GroupID
	epoch  Epoch
	from   Username
	sentAt time.Time
	body   string
	dir    Direction
}

// NewOutgoingGroupMessage makes a message from us to a group at epoch.
func NewOutgoingGroupMessage(group GroupID, epoch Epoch, from Username, body string, now time.Time) (GroupMessage, error) {
	if err := ValidateBody(body); err != nil {
		return GroupMessage{}, err
	}
	if group.IsZero() || from.IsZero() {
		return GroupMessage{}, fmt.Errorf("%w: group message needs a group and a sender", ErrUnknownGroup)
	}
	return GroupMessage{id: NewMessageID(), group: group, epoch: epoch, from: from, sentAt: now.UTC(), body: body, dir: Outgoing}, nil
}

// NewIncomingGroupMessage makes a message a member sent to a group.
func NewIncomingGroupMessage(id MessageID, group GroupID, epoch Epoch, from Username, sentAt time.Time, body string) (GroupMessage, error) {
	if err := ValidateBody(body); err != nil {
		return GroupMessage{}, err
	}
	if group.IsZero() || from.IsZero() {
		return GroupMessage{}, fmt.Errorf("%w: group message needs a group and a sender", ErrUnknownGroup)
	}
	return GroupMessage{id: id, group: group, epoch: epoch, from: from, sentAt: sentAt.UTC(), body: body, dir: Incoming}, nil
}

// RestoreGroupMessage rebuilds a message from storage; only stores call it.
func RestoreGroupMessage(id MessageID, group GroupID, epoch Epoch, from Username, sentAt time.Time, body string, dir Direction) GroupMessage {
	return GroupMessage{id: id, group: group, epoch: epoch, from: from, sentAt: sentAt.UTC(), body: body, dir: dir}
}

func (m GroupMessage) ID() MessageID        { return m.id }
func (m GroupMessage) Group() GroupID       { return m.group }
func (m GroupMessage) Epoch() Epoch         { return m.epoch }
func (m GroupMessage) From() Username       { return m.from }
func (m GroupMessage) SentAt() time.Time    { return m.sentAt }
func (m GroupMessage) Body() string         { return m.body }
func (m GroupMessage) Direction() Direction { return m.dir }
func (m GroupMessage) IsZero() bool         { return m.id == MessageID{} }

// GroupDelivery is where one of our group messages is for one member.
type GroupDelivery struct {
	Member Username
	State  MessageState
}

// CopyID is the message ID of the copy of group message id sent to member
// over its pairwise link: distinct per member, so every copy has its own
// place in the outbox and its own acknowledgement.
func CopyID(id MessageID, member Username) MessageID {
	h := sha256.New()
	h.Write([]byte("chatx-group-copy-v1\x00"))
	h.Write(id[:])
	h.Write([]byte(member.Key()))
	var out MessageID
	copy(out[:], h.Sum(nil))
	return out
}
