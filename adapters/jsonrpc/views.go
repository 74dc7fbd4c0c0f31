package jsonrpc

import (
	"encoding/hex"
	"math"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The JSON forms of domain values. Binary IDs are lower-case hex, times RFC
// 3339 in UTC (null when unknown), fingerprints the domain's String form
// (16 groups of four hex digits), states the domain's String form.

type endpointsView struct {
	Link []string `json:"link"`
	File []string `json:"file"`
}

func viewEndpoints(e domain.Endpoints) endpointsView {
	return endpointsView{Link: nonNil(e.Link), File: nonNil(e.File)}
}

type whoamiView struct {
	Name        string        `json:"name"`
	PeerID      string        `json:"peerId"`
	Fingerprint string        `json:"fingerprint"`
	Endpoints   endpointsView `json:"endpoints"`
}

type peerView struct {
	Name        string        `json:"name"`
	PeerID      string        `json:"peerId"`
	Fingerprint string        `json:"fingerprint"`
	Online      bool          `json:"online"`
	LastSeen    *string       `json:"lastSeen"`
	Endpoints   endpointsView `json:"endpoints"`
	Verified    bool          `json:"verified"`
	KeyChanged  bool          `json:"keyChanged"`
	Unread      int           `json:"unread"`
	// Path is "lan", "direct", "relayed", or null while there is no link;
	// Transport "tcp" or "quic" (null with no link); RTTMs the link's last
	// measured round trip in milliseconds (null when unknown).
	Path      *string  `json:"path"`
	Transport *string  `json:"transport"`
	RTTMs     *float64 `json:"rttMs"`
	NAT       *string  `json:"nat"`
	// What the user decided (contacts.go): a contact, blocked, the local
	// nickname ("" for none); a contact's status ("online", "away",
	// "busy") and status text.
	Contact    bool   `json:"contact"`
	Blocked    bool   `json:"blocked"`
	Nickname   string `json:"nickname"`
	Status     string `json:"status"`
	StatusText string `json:"statusText"`
}

// presenceView is a peer as a presence notification shows it.
type presenceView struct {
	Name        string        `json:"name"`
	PeerID      string        `json:"peerId"`
	Fingerprint string        `json:"fingerprint"`
	Online      bool          `json:"online"`
	LastSeen    *string       `json:"lastSeen"`
	Endpoints   endpointsView `json:"endpoints"`
}

func viewPresence(p domain.Peer) presenceView {
	v := presenceView{Name: p.Name().String(), Online: p.Online, LastSeen: timePtr(p.LastSeen), Endpoints: viewEndpoints(p.Endpoints)}
	if !p.Identity.IsZero() {
		v.PeerID = string(p.Identity.PeerID())
		v.Fingerprint = p.Identity.Fingerprint().String()
	}
	return v
}

func viewPeer(p ports.PeerView) peerView {
	pr := viewPresence(p.Peer)
	v := peerView{Name: pr.Name, PeerID: pr.PeerID, Fingerprint: pr.Fingerprint, Online: pr.Online,
		LastSeen: pr.LastSeen, Endpoints: pr.Endpoints, Verified: p.Verified, KeyChanged: p.KeyChanged, Unread: p.Unread,
		Path: optional(string(p.Path.Kind)), Transport: optional(string(p.Path.Transport)),
		NAT:     optional(string(p.Peer.Endpoints.NAT)),
		Contact: p.Contact, Blocked: p.Blocked, Nickname: p.Nickname,
		Status: p.Status.Availability.String(), StatusText: p.Status.Text}
	if p.Path.RTT > 0 {
		ms := float64(p.Path.RTT.Microseconds()) / 1000
		v.RTTMs = &ms
	}
	return v
}

// optional is nil for "", so that JSON says null.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type messageView struct {
	ID        string `json:"id"`
	From      string `json:"from"`
	To        string `json:"to"`
	Peer      string `json:"peer"`
	Direction string `json:"direction"`
	SentAt    string `json:"sentAt"`
	Text      string `json:"text"`
	State     string `json:"state"`
}

func viewMessage(m domain.Message) messageView {
	return messageView{ID: m.ID().String(), From: m.From().String(), To: m.To().String(), Peer: m.Peer().String(),
		Direction: m.Direction().String(), SentAt: formatTime(m.SentAt()), Text: m.Body(), State: m.State().String()}
}

func viewMessages(ms []domain.Message) []messageView {
	out := make([]messageView, 0, len(ms))
	for _, m := range ms {
		out = append(out, viewMessage(m))
	}
	return out
}

type messageStateView struct {
	ID    string `json:"id"`
	Peer  string `json:"peer"`
	State string `json:"state"`
	// Reason says why a message failed or was refused by the mailbox.
	Reason string `json:"reason,omitempty"`
}

type fileView struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type transferView struct {
	ID        string     `json:"id"`
	Peer      string     `json:"peer"`
	Direction string     `json:"direction"`
	Name      string     `json:"name"`
	Folder    bool       `json:"folder"`
	FileCount int        `json:"fileCount"`
	Files     []fileView `json:"files,omitempty"`
	State     string     `json:"state"`
	Bytes     int64      `json:"bytes"`
	Total     int64      `json:"total"`
	Rate      float64    `json:"rate"`
	ETA       float64    `json:"eta"`
	Average   float64    `json:"averageRate"`
	Elapsed   float64    `json:"elapsed"`
	SavedAs   string     `json:"savedAs"`
	Reason    string     `json:"reason"`
	Path      string     `json:"path"`
	CreatedAt *string    `json:"createdAt"`
	UpdatedAt *string    `json:"updatedAt"`
}

// viewTransfer shows a transfer; withFiles adds the file list (method
// results and offers; progress notifications leave it out to stay small).
func viewTransfer(t domain.Transfer, withFiles bool) transferView {
	m := t.Manifest()
	v := transferView{ID: t.ID().String(), Peer: t.Peer().String(), Direction: t.Direction().String(), Name: m.Name,
		Folder: m.IsFolder(), FileCount: len(m.Files), State: t.State().String(), Bytes: t.Done(), Total: t.Total(),
		Rate: round1(t.Rate()), ETA: round1(t.ETA().Seconds()), Average: round1(t.AverageRate()),
		Elapsed: round1(t.Elapsed().Seconds()), SavedAs: t.SavedAs(), Reason: t.Reason(),
		Path: string(t.FilePath()), CreatedAt: timePtr(t.CreatedAt()), UpdatedAt: timePtr(t.UpdatedAt())}
	if withFiles {
		v.Files = make([]fileView, 0, len(m.Files))
		for _, f := range m.Files {
			v.Files = append(v.Files, fileView{Path: f.Path, Size: f.Size, SHA256: hashString(f.Hash)})
		}
	}
	return v
}

type safetyView struct {
	Name         string  `json:"name"`
	SafetyNumber string  `json:"safetyNumber"`
	Ours         string  `json:"ours"`
	Theirs       string  `json:"theirs"`
	Verified     bool    `json:"verified"`
	PendingKey   *string `json:"pendingKey"`
}

func viewSafety(s ports.SafetyView) safetyView {
	v := safetyView{Name: s.Name.String(), SafetyNumber: s.SafetyNumber, Ours: s.Ours.String(), Theirs: s.Theirs.String(), Verified: s.Verified}
	if s.PendingKey != nil {
		p := s.PendingKey.String()
		v.PendingKey = &p
	}
	return v
}

type keyChangedView struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

type typingView struct {
	From string `json:"from"`
}

// reachabilityView: an online peer became unreachable, or reachable again.
type reachabilityView struct {
	Peer      string  `json:"peer"`
	Reachable bool    `json:"reachable"`
	Reason    string  `json:"reason"`
	Path      *string `json:"path"`
	Transport *string `json:"transport"`
}

func viewReachability(e ports.ReachabilityEvent) reachabilityView {
	return reachabilityView{Peer: e.Peer.String(), Reachable: e.Reachable, Reason: e.Reason,
		Path: optional(string(e.Path.Kind)), Transport: optional(string(e.Path.Transport))}
}

type registryView struct {
	Connected   bool   `json:"connected"`
	Error       string `json:"error"`
	CertChanged bool   `json:"certChanged"`
}

type deliveredView struct {
	ID   string `json:"id"`
	Peer string `json:"peer"`
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func timePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

func hashString(h [32]byte) string {
	if h == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(h[:])
}

func round1(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*10) / 10
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// reachabilityReportView is the result of the reachability method.
type reachabilityReportView struct {
	NAT        *string       `json:"nat"`
	Candidates []string      `json:"candidates"`
	Attempts   []attemptView `json:"attempts"`
}

type attemptView struct {
	Peer      string  `json:"peer"`
	At        string  `json:"at"`
	Path      *string `json:"path"`
	Transport *string `json:"transport"`
	Remote    string  `json:"remote"`
	OK        bool    `json:"ok"`
	Error     string  `json:"error"`
	Detail    string  `json:"detail"`
}

func viewReachabilityReport(r ports.ReachabilityReport) reachabilityReportView {
	v := reachabilityReportView{NAT: optional(string(r.NAT)), Candidates: append([]string{}, r.Candidates...),
		Attempts: make([]attemptView, 0, len(r.Attempts))}
	for _, a := range r.Attempts {
		av := attemptView{Peer: a.Peer.String(), At: formatTime(a.At), Path: optional(string(a.Path.Kind)),
			Transport: optional(string(a.Path.Transport)), Remote: a.Path.Remote, OK: a.Err == nil, Detail: a.Detail}
		if a.Err != nil {
			av.Error = a.Err.Error()
		}
		v.Attempts = append(v.Attempts, av)
	}
	return v
}
