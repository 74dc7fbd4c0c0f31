package registry_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"regexp"
	"testing"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// registerDirect registers id with the service itself (no HTTP), with one
// private link endpoint, which the registry publishes as it is.
func registerDirect(t *testing.T, svc *app.Registry, id domain.LocalIdentity, link string) {
	t.Helper()
	ctx := context.Background()
	ch, err := svc.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := domain.RegistryProof{Action: domain.ActionRegister, Name: id.Name(), Key: id.PublicKey(), Challenge: ch,
		Endpoints: domain.Endpoints{Link: []string{link}}}
	if _, err := svc.Register(ctx, ports.RegisterRequest{Proof: p, Signature: p.Sign(id)}); err != nil {
		t.Fatal(err)
	}
}

// rawStream opens GET /v1/events over TLS and returns a function that
// reads what one TLS record carries (crypto/tls hands over one record per
// Read): what the server wrote in one write, since these are far smaller
// than a record.
func rawStream(t *testing.T, ts *testServer) func() []byte {
	t.Helper()
	c, err := tls.Dial("tcp", ts.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("GET /v1/events HTTP/1.1\r\nHost: registry\r\nAccept: text/event-stream\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	return func() []byte {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		return append([]byte(nil), buf[:n]...)
	}
}

var (
	eventIDLine = regexp.MustCompile(`id: (\S+)\n`)
	onlineField = regexp.MustCompile(`"online":(true|false)`)
)

// A live session replaced by a new registration reaches each presence
// stream as the old session's offline, then the new one's online, each
// with its own ID, in one write (issue 10, item 8; two writes per stream
// doubled the cost of the fan-out to 10,000 watchers).
func TestReplacedSessionReachesStreamInOneWrite(t *testing.T) {
	t.Parallel()
	ts := startServer(t, fastConfig(t.TempDir(), ""), app.RegistryOptions{})
	bob := newLocal(t, "bob")
	registerDirect(t, ts.svc, bob, "10.0.0.1:7000")
	read := rawStream(t, ts)
	var start []byte
	for !bytes.Contains(start, []byte("event: synced")) {
		start = append(start, read()...)
	}
	if !bytes.Contains(start, []byte(`"name":"bob"`)) {
		t.Fatalf("snapshot without bob:\n%s", start)
	}
	registerDirect(t, ts.svc, bob, "10.0.0.2:7000")
	// Pings aside, the next write with an offline is bob's change. The
	// first registration's online may come before it (its publication can
	// trail the snapshot that already showed it), in a write of its own
	// or in front of the pair in the same write.
	var rec []byte
	for {
		if rec = read(); bytes.Contains(rec, []byte(`"online":false`)) {
			break
		}
	}
	if first := bytes.Index(rec, []byte("id: ")); first >= 0 && bytes.Count(rec, []byte("event: presence")) == 3 &&
		bytes.Contains(rec[:bytes.Index(rec, []byte(`"online":false`))], []byte(`"online":true`)) {
		rec = rec[bytes.Index(rec[first+1:], []byte("id: "))+first+1:] // the first registration's online, before the pair
	}
	if n := bytes.Count(rec, []byte("event: presence")); n != 2 {
		t.Fatalf("one write carries %d presence events, want bob's offline and online:\n%s", n, rec)
	}
	var online []string
	for _, m := range onlineField.FindAllSubmatch(rec, -1) {
		online = append(online, string(m[1]))
	}
	ids := eventIDLine.FindAllSubmatch(rec, -1)
	if len(online) != 2 || online[0] != "false" || online[1] != "true" || len(ids) != 2 ||
		ports.CompareEventIDs(string(ids[0][1]), string(ids[1][1])) >= 0 {
		t.Fatalf("write after the second register: online %v, %d IDs; want false then true, each with its own rising ID:\n%s", online, len(ids), rec)
	}
	if bytes.Count(rec, []byte(`"name":"bob"`)) != 2 || !bytes.Contains(rec[bytes.LastIndex(rec, []byte("event: presence")):], []byte("10.0.0.2:7000")) {
		t.Fatalf("write after the second register: not bob's offline and new online:\n%s", rec)
	}
}
