package tcp_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

var acceptAll = contract.LinkVerifierFunc(func(context.Context, domain.Identity) error { return nil })

type end struct {
	me   domain.LocalIdentity
	link *tcp.Link
	rec  *contract.LinkRecorder
	logs *logBuffer
}

func (e end) peer() domain.Peer {
	return domain.Peer{Identity: e.me.Identity, Online: true, Endpoints: domain.Endpoints{Link: e.link.Endpoints()}}
}

// startEnd makes a serving link on loopback whose log lines (debug and up)
// are kept in logs.
func startEnd(t testing.TB, name string, v ports.PeerVerifier, cfg tcp.Config) end {
	t.Helper()
	return startEndWith(t, name, v, cfg, nil)
}

// startEndWith serves h instead of a recorder (when h is not nil).
func startEndWith(t testing.TB, name string, v ports.PeerVerifier, cfg tcp.Config, h ports.EnvelopeHandler) end {
	t.Helper()
	me := newIdentity(t, name)
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	logs := &logBuffer{}
	level := slog.LevelDebug // the tests look for the debug records
	if _, bench := t.(*testing.B); bench {
		level = slog.LevelInfo // as a user runs it: benchmarks time the link, not its trace
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, &testWriterAt{t, slog.LevelWarn}), &slog.HandlerOptions{Level: level}))
	l, cleanup, err := tcp.NewLink(me, v, nil, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	rec := &contract.LinkRecorder{}
	if h == nil {
		h = rec
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return end{me: me, link: l, rec: rec, logs: logs}
}

// testWriterAt passes lines at level and above to the test log.
type testWriterAt struct {
	t     testing.TB
	level slog.Level
}

func (w *testWriterAt) Write(p []byte) (int, error) {
	s := string(p)
	if strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		w.t.Log(strings.TrimRight(s, "\n"))
	}
	return len(p), nil
}

func chat(body string) ports.Envelope {
	return ports.Envelope{Kind: ports.KindChat, MessageID: domain.NewMessageID(), SentAt: time.Now(), Body: body}
}

func TestTenThousandMessagesEachWayAtOnce(t *testing.T) {
	a := startEnd(t, "alice", acceptAll, tcp.Config{})
	b := startEnd(t, "bob", acceptAll, tcp.Config{})
	const n = 10000
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, p := range []struct{ from, to end }{{a, b}, {b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := p.from.link.Send(context.Background(), p.to.peer(), chat(fmt.Sprint(i))); err != nil {
					errs <- fmt.Errorf("%s → %s, message %d: %w", p.from.me.Name(), p.to.me.Name(), i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, e := range []end{a, b} {
		got := e.rec.WaitN(t, n)
		for i, r := range got {
			if r.Env.Body != fmt.Sprint(i) {
				t.Fatalf("%s: message %d is %q: lost, duplicated or reordered", e.me.Name(), i, r.Env.Body)
			}
		}
	}
	if strings.Contains(a.logs.String()+b.logs.String(), "level=WARN") {
		t.Errorf("warnings during a clean exchange:\n%s\n%s", a.logs, b.logs)
	}
}

func TestManInTheMiddleIsRefused(t *testing.T) {
	a := startEnd(t, "alice", acceptAll, tcp.Config{})
	bob := newIdentity(t, "bob")
	mallory := startEnd(t, "bob", acceptAll, tcp.Config{}) // bob's name, another key
	fake := domain.Peer{Identity: bob.Identity, Endpoints: domain.Endpoints{Link: mallory.link.Endpoints()}}
	err := a.link.Send(testCtx(t), fake, chat("for bob only"))
	var kc *domain.KeyChangedError
	if !errors.As(err, &kc) {
		t.Fatalf("Send through a man in the middle: %v, want *domain.KeyChangedError", err)
	}
	if kc.Old != bob.Fingerprint() || kc.New != mallory.me.Fingerprint() {
		t.Fatalf("KeyChangedError names %s → %s, want bob's and mallory's fingerprints", kc.Old.Short(), kc.New.Short())
	}
	if !strings.Contains(err.Error(), "the key of bob changed") {
		t.Errorf("error is not clear: %v", err)
	}
	if !strings.Contains(a.logs.String(), "peer presented another key") {
		t.Errorf("no log line for the refused key:\n%s", a.logs)
	}
	// Nothing reached mallory: the next envelope it gets is the first.
	if err := a.link.Send(testCtx(t), mallory.peer(), chat("hello mallory")); err != nil {
		t.Fatal(err)
	}
	if got := mallory.rec.WaitN(t, 1); got[0].Env.Body != "hello mallory" {
		t.Fatalf("mallory got %q", got[0].Env.Body)
	}
}

// rawClient is a hand-made peer: TLS with its own certificate, then raw frames.
type rawClient struct {
	me   domain.LocalIdentity
	conn *tls.Conn
	fr   *tcp.FrameReader
}

func identityCert(t *testing.T, me domain.LocalIdentity) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: me.Name().String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, me.PrivateKey().Public(), me.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: me.PrivateKey()}
}

func dialRaw(t *testing.T, to end, me domain.LocalIdentity, cfg *tls.Config) (*rawClient, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{tcp.ALPN},
			Certificates: []tls.Certificate{identityCert(t, me)}}
	}
	conn, err := tls.Dial("tcp", to.link.Endpoints()[0], cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(time.Minute))
	return &rawClient{me: me, conn: conn, fr: tcp.NewFrameReader(conn)}, nil
}

func (c *rawClient) write(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

func (c *rawClient) hello(t *testing.T) tcp.Frame {
	t.Helper()
	h, _ := tcp.AppendFrame(nil, tcp.FrameHello, make([]byte, 16))
	c.write(t, h)
	f, err := c.fr.Next()
	if err != nil {
		t.Fatalf("hello reply: %v", err)
	}
	return f
}

// waitClosed reads until the link closes the connection.
func (c *rawClient) waitClosed(t *testing.T) {
	t.Helper()
	for {
		if _, err := c.fr.Next(); err != nil {
			return
		}
	}
}

func TestIncomingLinksAreChecked(t *testing.T) {
	b := startEnd(t, "bob", contract.LinkVerifierFunc(func(_ context.Context, p domain.Identity) error {
		if p.Name().String() == "eve" {
			return domain.ErrUnknownPeer
		}
		return nil
	}), tcp.Config{})

	t.Run("no client certificate", func(t *testing.T) {
		c, err := dialRaw(t, b, newIdentity(t, "alice"), &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{tcp.ALPN}})
		if err == nil {
			_, err = c.fr.Next() // TLS 1.3: the server's refusal arrives after the client's handshake
		}
		if err == nil {
			t.Fatal("a client without certificate got a link")
		}
	})
	t.Run("no ALPN", func(t *testing.T) {
		me := newIdentity(t, "alice")
		c, err := dialRaw(t, b, me, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{identityCert(t, me)}})
		if err == nil {
			_, err = c.fr.Next()
		}
		if err == nil {
			t.Fatal("a client without ALPN chatx/1 got a link")
		}
	})
	t.Run("TLS 1.2", func(t *testing.T) {
		me := newIdentity(t, "alice")
		_, err := dialRaw(t, b, me, &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, NextProtos: []string{tcp.ALPN}, Certificates: []tls.Certificate{identityCert(t, me)}})
		if err == nil {
			t.Fatal("TLS 1.2 accepted")
		}
	})
	t.Run("refused by the verifier", func(t *testing.T) {
		c, err := dialRaw(t, b, newIdentity(t, "eve"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if f := c.hello(t); f.Type != tcp.FrameGoAway || len(f.Payload) != 1 || f.Payload[0] != tcp.GoAwayRefused {
			t.Fatalf("reply to a refused peer: type %#x payload %v, want goaway(refused)", byte(f.Type), f.Payload)
		}
		waitFor(t, "the refusal log line", func() bool { return strings.Contains(b.logs.String(), "incoming link refused by verifier") })
	})
	t.Run("unknown frame types are ignored", func(t *testing.T) {
		c, err := dialRaw(t, b, newIdentity(t, "carol"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if f := c.hello(t); f.Type != tcp.FrameHello {
			t.Fatalf("hello reply type %#x", byte(f.Type))
		}
		unknown, _ := tcp.AppendFrame(nil, 0x99, []byte("future"))
		msg, _ := tcp.EncodeEnvelope(chat("after the unknown frame"))
		before := len(b.rec.WaitN(t, 0)) // counted before writing: the chat may arrive at once
		c.write(t, append(unknown, msg...))
		got := b.rec.WaitN(t, before+1)
		if got[before].Env.Body != "after the unknown frame" {
			t.Fatalf("got %q", got[before].Env.Body)
		}
		waitFor(t, "the unknown-frame log line", func() bool { return strings.Contains(b.logs.String(), "ignoring frame of unknown type") })
	})
}

func TestGarbageAfterTheHandshakeClosesTheLink(t *testing.T) {
	chatFrame, _ := tcp.EncodeEnvelope(chat("x"))
	tests := []struct {
		name    string
		garbage []byte
	}{
		{"garbage length", []byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad}},
		{"oversized length", []byte{0x00, 0x10, 0x00, 0x03, 1, 1}},
		{"length below the header", []byte{0, 0, 0, 1, 1}},
		{"unknown version", []byte{0, 0, 0, 2, 7, 1}},
		{"malformed chat", append([]byte{0, 0, 0, 5, 1, 1}, 1, 2, 3)},
		{"chat with trailing bytes", append(append([]byte{0, 0, 0, byte(len(chatFrame) - 3)}, chatFrame[4:]...), 0)},
		{"second hello", append([]byte{0, 0, 0, 18, 1, 0x40}, make([]byte, 16)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startEnd(t, "bob", acceptAll, tcp.Config{})
			c, err := dialRaw(t, b, newIdentity(t, "mallory"), nil)
			if err != nil {
				t.Fatal(err)
			}
			c.hello(t)
			c.write(t, tt.garbage)
			c.waitClosed(t)
			waitFor(t, "the garbage log line", func() bool { return strings.Contains(b.logs.String(), "closing link: the peer sent garbage") })
			if got := b.rec.WaitN(t, 0); len(got) != 0 {
				t.Fatalf("garbage delivered %d envelopes", len(got))
			}
		})
	}
}

// A peer that completes the handshake and then never reads: the sender's
// Send fails within the write timeout, and other conversations go on.
func TestAPeerThatStopsReadingDoesNotBlockOthers(t *testing.T) {
	cfg := tcp.Config{WriteTimeout: time.Second, QueueSize: 64}
	a := startEnd(t, "alice", acceptAll, cfg)
	carol := startEnd(t, "carol", acceptAll, tcp.Config{})
	stuck := newIdentity(t, "stuck")
	c, err := dialRaw(t, a, stuck, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.hello(t) // and never read again
	stuckPeer := domain.Peer{Identity: stuck.Identity}
	floodErr := make(chan error, 1)
	go func() {
		body := strings.Repeat("x", 60<<10)
		for {
			if err := a.link.Send(context.Background(), stuckPeer, chat(body)); err != nil {
				floodErr <- err
				return
			}
		}
	}()
	for i := range 200 {
		if err := a.link.Send(testCtx(t), carol.peer(), chat(fmt.Sprint(i))); err != nil {
			t.Fatalf("send to carol while another peer is stuck: %v", err)
		}
	}
	carol.rec.WaitN(t, 200)
	select {
	case err := <-floodErr:
		if !errors.Is(err, domain.ErrPeerOffline) {
			t.Fatalf("Send to a peer that stopped reading: %v, want ErrPeerOffline", err)
		}
		t.Logf("Send to the stuck peer failed: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Send to a peer that stopped reading never failed")
	}
}

func TestSimultaneousDialsConvergeOnOneLink(t *testing.T) {
	for round := range 20 {
		a := startEnd(t, "alice", acceptAll, tcp.Config{})
		b := startEnd(t, "bob", acceptAll, tcp.Config{})
		var wg sync.WaitGroup
		for _, p := range []struct{ from, to end }{{a, b}, {b, a}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					if err := p.from.link.Send(context.Background(), p.to.peer(), chat(fmt.Sprint(i))); err != nil {
						t.Errorf("round %d: %s → %s: %v", round, p.from.me.Name(), p.to.me.Name(), err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, e := range []end{a, b} {
			for i, r := range e.rec.WaitN(t, 50) {
				if r.Env.Body != fmt.Sprint(i) {
					t.Fatalf("round %d, %s: message %d is %q", round, e.me.Name(), i, r.Env.Body)
				}
			}
		}
	}
}

func TestEndpoints(t *testing.T) {
	me := newIdentity(t, "alice")
	l, cleanup, err := tcp.NewLink(me, acceptAll, nil, tcp.Config{}, quietLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	eps := l.Endpoints()
	if len(eps) == 0 {
		t.Fatal("no endpoints")
	}
	last := eps[len(eps)-1]
	if !strings.HasPrefix(last, "127.") && !strings.HasPrefix(last, "[::1]") {
		t.Errorf("loopback is not last: %v", eps)
	}
	port := last[strings.LastIndex(last, ":"):]
	for _, ep := range eps {
		if !strings.HasSuffix(ep, port) {
			t.Errorf("endpoint %s does not carry the listening port %s", ep, port)
		}
	}
}

// A peer that restarts while its old link still looks alive (no reset yet):
// its new instance's link replaces the old one on the other side.
func TestARestartedPeerReplacesItsStaleLink(t *testing.T) {
	m := startEnd(t, "mike", acceptAll, tcp.Config{})
	oldP := startEnd(t, "pat", acceptAll, tcp.Config{})
	if err := m.link.Send(testCtx(t), oldP.peer(), chat("to the old instance")); err != nil {
		t.Fatal(err)
	}
	oldP.rec.WaitN(t, 1)

	// The "restarted" pat: same identity, new instance, new port.
	logs := &logBuffer{}
	newLink, cleanup, err := tcp.NewLink(oldP.me, acceptAll, nil, tcp.Config{ListenAddr: "127.0.0.1:0"},
		slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	rec := &contract.LinkRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go newLink.Serve(ctx, rec)
	if err := newLink.Send(testCtx(t), m.peer(), chat("I am back")); err != nil {
		t.Fatal(err)
	}
	m.rec.WaitN(t, 1)
	// mike now reaches pat over the new link, without dialling.
	if err := m.link.Send(testCtx(t), domain.Peer{Identity: oldP.me.Identity}, chat("to the new instance")); err != nil {
		t.Fatal(err)
	}
	if got := rec.WaitN(t, 1); got[0].Env.Body != "to the new instance" {
		t.Fatalf("new instance got %q", got[0].Env.Body)
	}
	if got := oldP.rec.WaitN(t, 1); len(got) != 1 {
		t.Fatalf("old instance got %d", len(got))
	}
}

func TestMaxLinks(t *testing.T) {
	a := startEnd(t, "alice", acceptAll, tcp.Config{MaxLinks: 1})
	b := startEnd(t, "bob", acceptAll, tcp.Config{})
	c := startEnd(t, "carol", acceptAll, tcp.Config{})
	if err := a.link.Send(testCtx(t), b.peer(), chat("1")); err != nil {
		t.Fatal(err)
	}
	if err := a.link.Send(testCtx(t), c.peer(), chat("2")); !errors.Is(err, domain.ErrTooLarge) {
		t.Fatalf("second outgoing link beyond MaxLinks: %v, want ErrTooLarge", err)
	}
	d := startEnd(t, "dave", acceptAll, tcp.Config{}) // carol may still hold the link alice refused
	if err := d.link.Send(testCtx(t), a.peer(), chat("3")); !errors.Is(err, tcp.ErrLinkRefused) {
		t.Fatalf("incoming link beyond MaxLinks: %v, want ErrLinkRefused", err)
	}
	if got := b.rec.WaitN(t, 1); got[0].Env.Body != "1" {
		t.Fatalf("bob got %q", got[0].Env.Body)
	}
}

// The same frames, written to a live link one byte per TLS record, then split
// at every offset of one frame, then all in one write: the link reassembles them.
func TestFramesCutAnyWayOverTheSocket(t *testing.T) {
	b := startEnd(t, "bob", acceptAll, tcp.Config{})
	c, err := dialRaw(t, b, newIdentity(t, "carol"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.hello(t); f.Type != tcp.FrameHello {
		t.Fatalf("hello reply type %#x", byte(f.Type))
	}
	want := contract.LinkSampleEnvelopes()
	whole := stream(t, want)
	for i := range whole { // dripped
		c.write(t, whole[i:i+1])
	}
	one, err := tcp.EncodeEnvelope(want[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(one); i++ { // split at every byte
		c.write(t, one[:i])
		c.write(t, one[i:])
	}
	c.write(t, whole) // coalesced
	got := b.rec.WaitN(t, 2*len(want)+len(one)-1)
	check := func(at int, w ports.Envelope) { contract.LinkSameEnvelope(t, got[at].Env, w) }
	for i, w := range want {
		check(i, w)
		check(len(want)+len(one)-1+i, w)
	}
	for i := range len(one) - 1 {
		check(len(want)+i, want[0])
	}
}
