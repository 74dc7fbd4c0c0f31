package domain

import "time"

// Endpoints are the addresses at which a peer can be reached, most preferred
// first: the local addresses the peer advertised, then the address the
// registry observed. Link addresses carry the message link, File addresses
// the file transport. Their form belongs to the transport that made them
// ("host:port" for TCP and QUIC, an opaque name in memory).
type Endpoints struct {
	Link []string
	File []string
	// NAT is the mapping behaviour of the NAT in front of the peer's UDP
	// socket, as the registry observed it (NATUnknown when not measured).
	NAT NATMapping
	// Candidates is the typed view of Link and File as the registry built
	// it: host candidates first, then the server-reflexive one. Empty when
	// the directory gives no types (Link and File remain authoritative).
	Candidates []Candidate
}

// Peer is another user as the directory knows them: identity, presence and
// where to reach them.
type Peer struct {
	Identity  Identity
	Online    bool
	Endpoints Endpoints
	LastSeen  time.Time
}

// Name is the peer's username.
func (p Peer) Name() Username { return p.Identity.Name() }

// PresenceEvent says that a peer came online, changed endpoints or went offline.
type PresenceEvent struct {
	Peer Peer
}

// Clone is a deep copy of e (stores and directories hand out copies, so a
// caller cannot change what they hold).
func (e Endpoints) Clone() Endpoints {
	return Endpoints{
		Link:       append([]string(nil), e.Link...),
		File:       append([]string(nil), e.File...),
		NAT:        e.NAT,
		Candidates: append([]Candidate(nil), e.Candidates...),
	}
}
