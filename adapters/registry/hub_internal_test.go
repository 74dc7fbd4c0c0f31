package registry

import (
	"strings"
	"testing"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The updates of one change (More) become one hub event holding their
// blocks in order; a stream that already sent some of them writes only
// the rest, and a channel closing between them ends the event there.
func TestJoinUpdates(t *testing.T) {
	t.Parallel()
	bob, err := domain.NewIdentity(domain.MustUsername("bob"), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	off := ports.PresenceUpdate{ID: "5-1", Event: domain.PresenceEvent{Peer: domain.Peer{Identity: bob}}, More: true}
	on := ports.PresenceUpdate{ID: "5-2", Event: domain.PresenceEvent{Peer: domain.Peer{Identity: bob, Online: true}}}
	in := make(chan ports.PresenceUpdate, 2)
	in <- on
	in <- off // not part of the first event: on ends it
	ev := joinUpdates(off, in)
	offB, onB := string(encodeEventID(off.ID, off.Event)), string(encodeEventID(on.ID, on.Event))
	if string(ev.b) != offB+onB || ev.id != "5-2" {
		t.Fatalf("joined event %q (id %s), want offline then online, id 5-2", ev.b, ev.id)
	}
	for _, tc := range []struct{ last, want string }{
		{"", offB + onB},
		{"4-9", offB + onB},
		{"5-1", onB},
		{"5-2", ""},
		{"6-1", ""},
	} {
		if got := string(ev.since(tc.last)); got != tc.want {
			t.Errorf("since(%q) = %q, want %q", tc.last, got, tc.want)
		}
	}
	if len(in) != 1 {
		t.Fatalf("joinUpdates read %d updates past the change", 1-len(in))
	}
	<-in
	close(in)
	if ev := joinUpdates(off, in); string(ev.b) != offB || ev.id != "5-1" || !strings.Contains(string(ev.since("")), "id: 5-1") {
		t.Fatalf("pair cut by a closed channel: %q (id %s), want the offline alone", ev.b, ev.id)
	}
	single := joinUpdates(on, in)
	if string(single.since("5-1")) != onB || single.since("5-2") != nil {
		t.Fatalf("single event: since 5-1 %q, since 5-2 %q", single.since("5-1"), single.since("5-2"))
	}
}
