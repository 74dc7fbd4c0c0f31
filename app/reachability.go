package app

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// maxReachPeers bounds the peers whose reachability is remembered.
const maxReachPeers = 4096

// reachability remembers, per peer, whether the last attempt to reach it
// failed while the directory listed it online, and says so once per change:
// a log line at INFO with the reason, and a ports.ReachabilityEvent that
// the interfaces show ("trying to reach bob…"). A peer that is offline is
// not "unreachable": the outbox simply waits for it.
type reachability struct {
	link   ports.PathReporter
	events ports.EventSink

	mu          sync.Mutex
	unreachable map[string]string // by name key: the reason last reported
}

func newReachability(link ports.PathReporter, events ports.EventSink) *reachability {
	return &reachability{link: link, events: events, unreachable: make(map[string]string)}
}

// failed records that peer could not be reached; err says why.
func (r *reachability) failed(peer domain.Peer, err error) {
	var kc *domain.KeyChangedError
	if !peer.Online || errors.As(err, &kc) || err == nil {
		return
	}
	reason := err.Error()
	key := peer.Name().Key()
	r.mu.Lock()
	_, known := r.unreachable[key]
	if !known && len(r.unreachable) >= maxReachPeers {
		clear(r.unreachable)
	}
	r.unreachable[key] = reason
	r.mu.Unlock()
	if known {
		return // once per change: the reason may vary, the state did not
	}
	slog.Info("cannot reach peer although it is online", "peer", peer.Name().String(), "reason", reason)
	r.events.Publish(ports.ReachabilityEvent{Peer: peer.Name(), Reason: reason})
}

// reached records that a link to peer works.
func (r *reachability) reached(peer domain.Peer) {
	key := peer.Name().Key()
	r.mu.Lock()
	_, was := r.unreachable[key]
	delete(r.unreachable, key)
	r.mu.Unlock()
	if !was {
		return
	}
	path := r.link.Path(peer.Identity)
	slog.Info("reached peer", "peer", peer.Name().String(), "path", path.String())
	r.events.Publish(ports.ReachabilityEvent{Peer: peer.Name(), Reachable: true, Path: path})
}

// forget drops what is known of a peer that went offline.
func (r *reachability) forget(name domain.Username) {
	r.mu.Lock()
	delete(r.unreachable, name.Key())
	r.mu.Unlock()
}
