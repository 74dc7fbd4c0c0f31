package udp

import (
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// NAT is not measured by this transport: it has no STUN yet.
func (t *Transport) NAT() domain.NATMapping { return domain.NATUnknown }

// Candidates are the host candidates: the listening port on each address.
func (t *Transport) Candidates() []string {
	out := make([]string, 0, len(t.endpoints))
	for _, ep := range t.endpoints {
		out = append(out, "host "+ep)
	}
	return out
}

// Attempts are not recorded by this transport yet.
func (t *Transport) Attempts() []ports.Attempt { return nil }
