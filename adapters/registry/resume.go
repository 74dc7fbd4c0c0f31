package registry

import (
	"bytes"
	"context"
	"errors"
	"net/http"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// resumedHeader on a presence stream's answer says that the server
// resumed it from the client's Last-Event-ID: the client keeps its online
// table, and what follows is only what changed since
// (docs/registry-api.md).
const resumedHeader = "Chatx-Stream-Resumed"

// maxReplay bounds the events a resumed stream replays; a client further
// behind gets the snapshot.
const maxReplay = 10_000

// streamStart is what a presence stream begins with: the online snapshot
// and the position it reflects, or (resumed) the events since the
// client's Last-Event-ID.
type streamStart struct {
	resumed  bool
	snapshot []domain.Peer
	replay   []ports.PresenceUpdate
	position string // ID the snapshot reflects ("" unknown)
}

// streamStart resumes from the request's Last-Event-ID when the service
// keeps events with IDs and still has every one since; else it takes the
// snapshot (the documented resync). Callers subscribe to the hub first.
func (s *Server) streamStart(ctx context.Context, r *http.Request) (streamStart, error) {
	feed, ok := s.svc.(ports.PresenceFeed)
	last := r.Header.Get("Last-Event-ID")
	if ok && last != "" && len(last) <= 64 {
		replay, err := feed.Since(ctx, last, maxReplay+1)
		switch {
		case err == nil && len(replay) <= maxReplay:
			s.metrics.resume("resumed")
			return streamStart{resumed: true, replay: replay, position: last}, nil
		case err == nil, errors.Is(err, ports.ErrResumeGap):
			s.metrics.resume("gap")
		default:
			s.log.Warn("presence stream: resume failed; sending the snapshot", "err", err)
			s.metrics.resume("error")
		}
	}
	// The position is read before the snapshot, so the snapshot reflects
	// at least every event up to it.
	st := streamStart{position: s.hub.position()}
	var err error
	st.snapshot, err = s.svc.Online(ctx)
	return st, err
}

// write puts the start of the stream in buf, ending with the synced event
// (tagged with the position, so a client that reconnects before any
// change resumes from there), and returns the ID of the last event
// written: live events up to it are skipped as already sent.
func (st streamStart) write(buf *bytes.Buffer) string {
	last := st.position
	if st.resumed {
		for _, u := range st.replay {
			buf.Write(encodeEventID(u.ID, u.Event))
			last = u.ID
		}
	} else {
		for _, p := range st.snapshot {
			writeEvent(buf, domain.PresenceEvent{Peer: p})
		}
	}
	if last != "" && !st.resumed {
		buf.WriteString("id: " + last + "\n")
	}
	if st.resumed {
		buf.WriteString("event: synced\ndata: {\"resumed\":true}\n\n")
	} else {
		buf.WriteString("event: synced\ndata: {}\n\n")
	}
	return last
}

// after says whether e comes after the event ID last (always, when either
// is unknown).
func (e *hubEvent) after(last string) bool {
	return e.id == "" || last == "" || ports.CompareEventIDs(e.id, last) > 0
}
