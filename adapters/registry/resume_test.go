package registry_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct{ id, event, data string }

// openStream opens GET /v1/events with lastID as Last-Event-ID ("" none)
// and returns the answer's resumed header and a reader of its events.
func openEventStream(t *testing.T, ctx context.Context, ts *testServer, lastID string) (bool, func() sseEvent) {
	t.Helper()
	base := strings.SplitN(string(ts.url), "/#", 2)[0]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	next := func() sseEvent {
		t.Helper()
		var ev sseEvent
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.event != "" {
					return ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}
	return resp.Header.Get("Chatx-Stream-Resumed") == "true", next
}

// A stream reopened with the last event ID it saw gets what changed since
// — not the snapshot — and says so; an unknown ID gets the snapshot.
func TestStreamResumesFromLastEventID(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := newClient(t, ts.url, "")
	if err := alice.Register(ctx, newLocal(t, "alice"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	resumed, next := openEventStream(t, ctx, ts, "")
	if resumed {
		t.Fatal("a stream without Last-Event-ID says it resumed")
	}
	// The snapshot (alice), then synced with the position it reflects.
	var synced sseEvent
	for synced = next(); synced.event != "synced"; synced = next() {
		if synced.event == "presence" && !strings.Contains(synced.data, `"name":"alice"`) {
			t.Fatalf("snapshot holds %s", synced.data)
		}
	}
	if synced.id == "" {
		t.Fatal("synced carries no event ID")
	}
	bob := newClient(t, ts.url, "")
	if err := bob.Register(ctx, newLocal(t, "bob"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	var bobOnline sseEvent
	for bobOnline = next(); !(bobOnline.event == "presence" && strings.Contains(bobOnline.data, `"name":"bob"`)); bobOnline = next() {
	}
	if bobOnline.id == "" {
		t.Fatal("a live event carries no ID")
	}
	// Reconnecting from synced's ID: bob's change is replayed, alice is
	// not sent again.
	resumed, next = openEventStream(t, ctx, ts, synced.id)
	if !resumed {
		t.Fatal("stream from a kept ID not resumed")
	}
	var replayed []string
	for ev := next(); ev.event != "synced"; ev = next() {
		replayed = append(replayed, ev.id+" "+ev.data)
	}
	if len(replayed) == 0 || !strings.Contains(strings.Join(replayed, "\n"), `"name":"bob"`) || strings.Contains(strings.Join(replayed, "\n"), `"name":"alice"`) {
		t.Fatalf("replay since %s:\n%s\nwant bob's change only", synced.id, strings.Join(replayed, "\n"))
	}
	// An ID from before a restart (another epoch) or garbage: the snapshot.
	for _, id := range []string{"1-5", "garbage", fmt.Sprintf("%s0", bobOnline.id)} {
		resumed, next = openEventStream(t, ctx, ts, id)
		if resumed {
			t.Fatalf("Last-Event-ID %q resumed", id)
		}
		names := 0
		for ev := next(); ev.event != "synced"; ev = next() {
			names++
		}
		if names != 2 {
			t.Fatalf("snapshot after Last-Event-ID %q: %d users, want alice and bob", id, names)
		}
	}
}
