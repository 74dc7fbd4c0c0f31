package udp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// The STUN loop asks both server ports from the QUIC socket, checks the
// answers' integrity and derives the NAT mapping from what they saw.
func TestSTUNLearnsMappingAndReflexiveAddress(t *testing.T) {
	const key = "session-key"
	fixed := func(port int) func(*net.UDPAddr) *net.UDPAddr {
		return func(*net.UDPAddr) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: port} }
	}
	same := func(src *net.UDPAddr) *net.UDPAddr { return src }
	cases := []struct {
		name      string
		a, b      func(*net.UDPAddr) *net.UDPAddr
		badKeyA   bool
		want      domain.NATMapping
		wantSrflx []string
	}{
		{"same mapping on both ports", fixed(41000), fixed(41000), false, domain.NATEndpointIndependent, []string{"srflx 198.51.100.7:41000"}},
		{"a mapping per port", fixed(41000), fixed(41001), false, domain.NATEndpointDependent, []string{"srflx 198.51.100.7:41000", "srflx 198.51.100.7:41001"}},
		{"no NAT", same, same, false, domain.NATNone, nil},
		{"an answer signed with another key is ignored", fixed(41000), fixed(41002), true, domain.NATUnknown, []string{"srflx 198.51.100.7:41002"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			signA := key
			if c.badKeyA {
				signA = "another key"
			}
			a, b := startSTUN(t, key, signA, c.a), startSTUN(t, key, key, c.b)
			me := newLocalIdentity(t, "alice")
			rdv := &fakeRendezvous{stun: ports.STUNBinding{Servers: []string{a.addr(), b.addr()}, Username: "s1:alice", Key: []byte(key)}}
			tr := newRdvTransport(t, me, contract.AcceptAll{}, newHub(), rdv, udp.Config{})
			waitFor(t, "both servers to answer", func() bool { return len(a.answered) > 0 && len(b.answered) > 0 })
			waitFor(t, "a reflexive address or a mapping", func() bool {
				return tr.NAT() != domain.NATUnknown || slices.ContainsFunc(tr.Candidates(), func(s string) bool { return len(s) > 5 && s[:5] == "srflx" })
			})
			if got := tr.NAT(); got != c.want {
				t.Errorf("NAT() = %q, want %q", got, c.want)
			}
			var srflx []string
			for _, s := range tr.Candidates() {
				if len(s) > 5 && s[:5] == "srflx" {
					srflx = append(srflx, s)
				}
			}
			if c.wantSrflx != nil && !slices.Equal(srflx, c.wantSrflx) {
				t.Errorf("reflexive candidates %v, want %v", srflx, c.wantSrflx)
			}
		})
	}
}

// A message-link stream carries bytes both ways, names the peer the
// handshake proved, reports its path, and honours deadlines. The other
// side opens its own stream on the same connection without dialling.
func TestLinkStreams(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	a := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
	b := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	out, err := a.OpenStream(ctx, peerOf(bob.Identity, b))
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("hello bob")); err != nil {
		t.Fatal(err)
	}
	in, err := b.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	defer in.Close()
	if !in.Peer().SameKey(alice.Identity.PublicKey()) || !out.Peer().SameKey(bob.Identity.PublicKey()) {
		t.Fatalf("peers %s / %s, want alice / bob", in.Peer().Name(), out.Peer().Name())
	}
	got := make([]byte, len("hello bob"))
	if _, err := io.ReadFull(in, got); err != nil || string(got) != "hello bob" {
		t.Fatalf("bob read %q, %v", got, err)
	}
	if _, err := in.Write([]byte("hi alice")); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len("hi alice"))
	if _, err := io.ReadFull(out, got); err != nil || string(got) != "hi alice" {
		t.Fatalf("alice read %q, %v", got, err)
	}
	for _, p := range []domain.Path{out.Path(), in.Path(), a.Path(bob.Identity)} {
		if p.Kind != domain.PathLAN || p.Transport != domain.TransportQUIC || p.Remote == "" {
			t.Errorf("path %+v, want lan quic with a remote address", p)
		}
	}

	// A read deadline in the past fails the read with a timeout.
	if err := out.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := out.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline = %v, want a timeout", err)
	}

	// bob opens a stream back knowing no endpoint of alice: it rides the
	// connection alice dialled.
	back, err := b.OpenStream(ctx, domain.Peer{Identity: alice.Identity, Online: true})
	if err != nil {
		t.Fatalf("OpenStream back on alice's connection: %v", err)
	}
	defer back.Close()
	if _, err := back.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	in2, err := a.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in2.Close()
	if _, err := io.ReadFull(in2, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

// One connection per peer, whoever dialled: after bob sent alice a file,
// alice's file to bob rides bob's connection (she knows no endpoint of his).
func TestConnectionReusedInBothDirections(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	a := newTransport(t, alice, contract.AcceptAll{}, udp.Config{})
	b := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	recvA, recvB := contract.NewRecordingReceiver(bob.Identity), contract.NewRecordingReceiver(alice.Identity)
	serve(t, a, recvA)
	serve(t, b, recvB)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	toAlice, toBob := []byte("from bob"), []byte("from alice")
	id1, id2 := domain.NewTransferID(), domain.NewTransferID()
	fa := recvA.Add(id1, 0, toAlice, nil)
	fb := recvB.Add(id2, 0, toBob, nil)
	if err := b.Send(ctx, peerOf(alice.Identity, a), id1, 0, contract.NewMemorySource(toAlice), nil); err != nil {
		t.Fatalf("bob's Send: %v", err)
	}
	noEndpoints := domain.Peer{Identity: bob.Identity, Online: true}
	if err := a.Send(ctx, noEndpoints, id2, 0, contract.NewMemorySource(toBob), nil); err != nil {
		t.Fatalf("alice's Send on bob's connection: %v", err)
	}
	fa.WaitFinished(t)
	fb.WaitFinished(t)
	if !bytes.Equal(fa.Data(), toAlice) || !bytes.Equal(fb.Data(), toBob) {
		t.Fatal("files differ")
	}
}

// Punching: bob lists no endpoint alice could dial, so she signals him
// through the rendezvous; both probe, and she dials the address that
// answered with bob's key. The doctor's attempts show it.
func TestPunchingConnects(t *testing.T) {
	h := newHub()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	a := newRdvTransport(t, alice, contract.AcceptAll{}, h, nil, udp.Config{})
	b := newRdvTransport(t, bob, contract.AcceptAll{}, h, nil, udp.Config{})
	signals := h.tapOf(string(bob.Identity.PublicKey()))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	out := openWithoutEndpoints(ctx, t, a, bob.Identity)
	if _, err := out.Write([]byte("punched")); err != nil {
		t.Fatal(err)
	}
	in, err := b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	got := make([]byte, 7)
	if _, err := io.ReadFull(in, got); err != nil || string(got) != "punched" {
		t.Fatalf("bob read %q, %v", got, err)
	}
	select {
	case s := <-signals:
		typ, _, _, _, err := udp.DecodeSignal(s.Payload, alice)
		if err != nil || typ != udp.SigConnect {
			t.Fatalf("bob's first signal: type %d, %v; want a connect", typ, err)
		}
	default:
		t.Fatal("bob got no signal: the connection was not punched")
	}
	att := a.Attempts()
	if len(att) == 0 || att[0].Err != nil || att[0].Peer.String() != "bob" || att[0].Path.Transport != domain.TransportQUIC {
		t.Fatalf("attempts %+v, want a won attempt to bob first", att)
	}
}

// openWithoutEndpoints opens a link stream to a peer whose endpoints the
// directory does not know: only punching can reach it. The stream is
// closed at the test's end.
func openWithoutEndpoints(ctx context.Context, t *testing.T, tr *udp.Transport, to domain.Identity) ports.PathConn {
	t.Helper()
	out, err := tr.OpenStream(ctx, domain.Peer{Identity: to, Online: true})
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	t.Cleanup(func() { _ = out.Close() })
	return out
}

// harness plays bob at a bare UDP socket: its signals are bob's, honestly
// signed, but it cannot sign probes with bob's key.
type harness struct {
	conn *net.UDPConn
	addr netip.AddrPort
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &harness{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

// A probe or reply that does not carry bob's signature never makes alice
// dial: the harness answers every probe with forged replies, and alice
// gives up with ErrUnreachable without ever sending it a QUIC packet.
func TestForgedProbesNeverLeadToADial(t *testing.T) {
	h := newHub()
	alice, bob, mallory := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob"), newLocalIdentity(t, "mallory")
	a := newRdvTransport(t, alice, contract.AcceptAll{}, h, nil, udp.Config{})
	fake := newHarness(t)
	bobRdv := &fakeRendezvous{hub: h, me: bob.Identity}
	bobBox := h.box(string(bob.Identity.PublicKey()))

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := a.OpenStream(ctx, domain.Peer{Identity: bob.Identity, Online: true})
		done <- err
	}()
	var session [16]byte
	select {
	case s := <-bobBox:
		typ, sess, _, _, err := udp.DecodeSignal(s.Payload, alice)
		if err != nil || typ != udp.SigConnect {
			t.Fatalf("signal to bob: type %d, %v", typ, err)
		}
		session = sess
	case <-time.After(wait):
		t.Fatal("alice sent bob no signal")
	}
	answer := udp.NewSignal(bob, udp.SigAnswer, session, alice.Identity, time.Now(), fake.addr)
	if err := bobRdv.Signal(context.Background(), alice.Identity, answer); err != nil {
		t.Fatal(err)
	}

	aliceKey, bobKey := alice.Identity.PublicKey(), bob.Identity.PublicKey()
	probes, quic := 0, 0
	from := make(chan *net.UDPAddr, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 2048)
		sent := false
		for {
			n, src, err := fake.conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if !sent {
				from <- src
				sent = true
			}
			b := buf[:n]
			if b[0]&0x80 != 0 {
				quic++
				continue
			}
			typ, sess, nonce, ok := udp.UnsignedProbe(b)
			if !ok || typ != udp.ProbeReq || sess != session {
				continue
			}
			probes++
			var fresh [16]byte
			// Signed by mallory while claiming bob; mallory's own key; a
			// probe from mallory: none may validate the address.
			for _, p := range [][]byte{
				udp.NewProbe(mallory, udp.ProbeReply, session, bobKey, aliceKey, fresh, nonce),
				udp.NewProbe(mallory, udp.ProbeReply, session, mallory.Identity.PublicKey(), aliceKey, fresh, nonce),
				udp.NewProbe(mallory, udp.ProbeReq, session, mallory.Identity.PublicKey(), aliceKey, fresh, [16]byte{}),
			} {
				_, _ = fake.conn.WriteToUDP(p, src)
			}
		}
	}()
	err := <-done
	_ = fake.conn.Close()
	<-stopped
	if !errors.Is(err, ports.ErrUnreachable) {
		t.Fatalf("OpenStream = %v, want ErrUnreachable", err)
	}
	select {
	case <-from:
	default:
		t.Fatal("alice sent the harness no probe")
	}
	if quic != 0 {
		t.Fatalf("alice sent %d QUIC packets to an address that never proved bob's key", quic)
	}
	if probes == 0 || probes > 10 {
		t.Fatalf("alice sent %d probes to the candidate, want 1..10", probes)
	}
}

// Signals with a bad signature, another signer, a stale timestamp, or
// from a key the verifier refuses make bob probe nothing; the good signal
// after them does.
func TestBadSignalsAreDropped(t *testing.T) {
	h := newHub()
	alice, bob, mallory := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob"), newLocalIdentity(t, "mallory")
	newRdvTransport(t, bob, refuse{"mallory"}, h, nil, udp.Config{})
	fake := newHarness(t)
	asAlice := &fakeRendezvous{hub: h, me: alice.Identity}
	asMallory := &fakeRendezvous{hub: h, me: mallory.Identity}
	ctx := context.Background()
	sess := func(b byte) [16]byte { var s [16]byte; s[0] = b; return s }

	corrupt := udp.NewSignal(alice, udp.SigConnect, sess(2), bob.Identity, time.Now(), fake.addr)
	corrupt[len(corrupt)-1] ^= 1
	bad := []struct {
		rdv     *fakeRendezvous
		payload []byte
	}{
		{asAlice, udp.NewSignal(mallory, udp.SigConnect, sess(1), bob.Identity, time.Now(), fake.addr)}, // signed by another key
		{asAlice, corrupt}, // bad signature
		{asAlice, udp.NewSignal(alice, udp.SigConnect, sess(3), bob.Identity, time.Now().Add(-time.Hour), fake.addr)}, // stale
		{asAlice, udp.NewSignal(alice, udp.SigConnect, sess(4), mallory.Identity, time.Now(), fake.addr)},             // for another key
		{asMallory, udp.NewSignal(mallory, udp.SigConnect, sess(5), bob.Identity, time.Now(), fake.addr)},             // refused sender
	}
	for _, b := range bad {
		if err := b.rdv.Signal(ctx, bob.Identity, b.payload); err != nil {
			t.Fatal(err)
		}
	}
	good := udp.NewSignal(alice, udp.SigConnect, sess(9), bob.Identity, time.Now(), fake.addr)
	if err := asAlice.Signal(ctx, bob.Identity, good); err != nil {
		t.Fatal(err)
	}
	_ = fake.conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	for seen := 0; seen < 3; {
		n, _, err := fake.conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("waiting for bob's probes: %v", err)
		}
		typ, session, _, from, err := udp.DecodeProbe(buf[:n])
		if err != nil || typ != udp.ProbeReq || !bob.Identity.SameKey(from) {
			t.Fatalf("bob sent %x (%v), want a probe signed by bob", buf[:n], err)
		}
		if session != sess(9) {
			t.Fatalf("bob probed for session %x, which a dropped signal named", session[:1])
		}
		seen++
	}
}

// When both NATs map per endpoint, punching is skipped and the relay
// carries the connection: alice allocates on the TURN server, signals her
// relay address, and bob dials it from his QUIC socket. Both ends report
// the path as relayed, and bytes flow both ways.
func TestRelayedWhenBothNATsMapPerEndpoint(t *testing.T) {
	turnAddr, _ := udp.StartPionTURN(t)
	a, b, bob := relayedPair(t, turnAddr)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// bob's only endpoint answers nothing (a reflexive address whose
	// mapping was for the registry alone).
	bobPeer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: []string{"127.0.0.1:9"}, NAT: domain.NATEndpointDependent}}
	out, err := a.OpenStream(ctx, bobPeer)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("via relay")); err != nil {
		t.Fatal(err)
	}
	in, err := b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	got := make([]byte, 9)
	if _, err := io.ReadFull(in, got); err != nil || string(got) != "via relay" {
		t.Fatalf("bob read %q, %v", got, err)
	}
	if _, err := in.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(out, got[:2]); err != nil || string(got[:2]) != "ok" {
		t.Fatalf("alice read %q, %v", got[:2], err)
	}
	if out.Path().Kind != domain.PathRelayed || in.Path().Kind != domain.PathRelayed {
		t.Fatalf("paths %v / %v, want relayed at both ends", out.Path(), in.Path())
	}
	if !slices.ContainsFunc(a.Candidates(), func(s string) bool { return len(s) > 5 && s[:5] == "relay" }) {
		t.Fatalf("alice's candidates %v lack the relay", a.Candidates())
	}
}

// A relay allocation the server forgot (the registry, with its embedded
// relay, restarted; make soak seed 5) is replaced: alice allocated before
// the restart, and her next relayed dial still reaches bob, on a new
// allocation, instead of failing for the rest of her process's life.
func TestRelayAllocatedAnewAfterTheServerRestarted(t *testing.T) {
	turnAddr, restart := udp.StartRestartablePionTURN(t)
	a, b, bob := relayedPair(t, turnAddr)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := a.EnsureRelay(ctx); err != nil {
		t.Fatal(err)
	}
	restart()
	bobPeer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: []string{"127.0.0.1:9"}, NAT: domain.NATEndpointDependent}}
	out, err := a.OpenStream(ctx, bobPeer)
	if err != nil {
		t.Fatalf("OpenStream after the relay server restarted: %v", err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("new relay")); err != nil {
		t.Fatal(err)
	}
	in, err := b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	got := make([]byte, 9)
	if _, err := io.ReadFull(in, got); err != nil || string(got) != "new relay" {
		t.Fatalf("bob read %q, %v", got, err)
	}
	if out.Path().Kind != domain.PathRelayed {
		t.Fatalf("path %v, want relayed", out.Path())
	}
}

// relayedPair is alice behind a NAT that maps per endpoint (two STUN
// servers see two ports) with turnAddr as her relay, and bob with no
// rendezvous, on one signalling hub.
func relayedPair(t *testing.T, turnAddr string) (a, b *udp.Transport, bob domain.LocalIdentity) {
	t.Helper()
	a, b, _, bob = relayedPairWith(t, turnAddr, udp.Config{})
	return a, b, bob
}

// relayedPairWith is relayedPair with cfg for both transports, also
// returning alice.
func relayedPairWith(t *testing.T, turnAddr string, cfg udp.Config) (a, b *udp.Transport, alice, bob domain.LocalIdentity) {
	t.Helper()
	const key = "k"
	at := func(port int) func(*net.UDPAddr) *net.UDPAddr {
		return func(*net.UDPAddr) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: port} }
	}
	s1, s2 := startSTUN(t, key, key, at(41001)), startSTUN(t, key, key, at(41002))
	h := newHub()
	alice = newLocalIdentity(t, "alice")
	bob = newLocalIdentity(t, "bob")
	a = newRdvTransport(t, alice, contract.AcceptAll{}, h, &fakeRendezvous{
		stun:   ports.STUNBinding{Servers: []string{s1.addr(), s2.addr()}, Username: "u", Key: []byte(key)},
		relays: []ports.RelayServer{udp.TestRelayServer("turn:"+turnAddr+"?transport=udp", "alice", time.Hour)},
	}, cfg)
	b = newRdvTransport(t, bob, contract.AcceptAll{}, h, nil, cfg)
	waitFor(t, "alice to measure her NAT", func() bool { return a.NAT() == domain.NATEndpointDependent })
	return a, b, alice, bob
}

// When the peer cannot reach our relay (here: the relay only lets in an
// address bob does not send from), bob offers his own relay back and
// alice dials it from her QUIC socket.
func TestRelayOfferedBackWhenThePeerCannotReachOurs(t *testing.T) {
	turnAddr, _ := udp.StartPionTURN(t)
	const key = "k"
	at := func(port int) func(*net.UDPAddr) *net.UDPAddr {
		return func(*net.UDPAddr) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: port} }
	}
	s1, s2 := startSTUN(t, key, key, at(41001)), startSTUN(t, key, key, at(41002))
	h := newHub()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	relayFor := func(name string) []ports.RelayServer {
		return []ports.RelayServer{udp.TestRelayServer("turn:"+turnAddr+"?transport=udp", name, time.Hour)}
	}
	a := newRdvTransport(t, alice, contract.AcceptAll{}, h, &fakeRendezvous{
		stun:   ports.STUNBinding{Servers: []string{s1.addr(), s2.addr()}, Username: "u", Key: []byte(key)},
		relays: relayFor("alice"),
	}, udp.Config{})
	b := newRdvTransport(t, bob, contract.AcceptAll{}, h, &fakeRendezvous{relays: relayFor("bob")}, udp.Config{ListenAddr: "127.0.0.2:0"})
	waitFor(t, "alice to measure her NAT", func() bool { return a.NAT() == domain.NATEndpointDependent })

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	bobPeer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: []string{"127.0.0.3:9"}, NAT: domain.NATEndpointDependent}}
	out, err := a.OpenStream(ctx, bobPeer)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	defer out.Close()
	if _, err := out.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	in, err := b.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	got := make([]byte, 4)
	if _, err := io.ReadFull(in, got); err != nil || string(got) != "back" {
		t.Fatalf("bob read %q, %v", got, err)
	}
	if out.Path().Kind != domain.PathRelayed || in.Path().Kind != domain.PathRelayed {
		t.Fatalf("paths %v / %v, want relayed", out.Path(), in.Path())
	}
	if !slices.ContainsFunc(b.Candidates(), func(s string) bool { return len(s) > 5 && s[:5] == "relay" }) {
		t.Fatalf("bob's candidates %v lack his relay: alice's relay carried it after all", b.Candidates())
	}
}

// Candidates are raced, not tried in turn: a first endpoint where nothing
// answers does not hold up the second, even with a handshake timeout
// longer than the whole test may take.
func TestDirectCandidatesAreRaced(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	a := newTransport(t, alice, contract.AcceptAll{}, udp.Config{HandshakeTimeout: 10 * time.Minute, ConnectTimeout: 10 * time.Minute})
	b := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	silent := newHarness(t) // reads nothing, answers nothing
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	peer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: append([]string{silent.addr.String()}, b.Endpoints()...)}}
	out, err := a.OpenStream(ctx, peer)
	if err != nil {
		t.Fatalf("OpenStream with a silent first endpoint: %v", err)
	}
	defer out.Close()
	if got := out.Path().Remote; got != b.Endpoints()[0] {
		t.Fatalf("connected to %s, want bob at %s", got, b.Endpoints()[0])
	}
}

// recordLog keeps the messages of INFO records.
type recordLog struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recordLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *recordLog) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	return nil
}
func (r *recordLog) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recordLog) WithGroup(string) slog.Handler      { return r }

func (r *recordLog) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// An online peer that cannot be reached is logged at INFO once per change
// of the reason, and every failed attempt is in the doctor's list.
func TestUnreachablePeerLoggedOncePerChange(t *testing.T) {
	h := newHub()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	logs := &recordLog{}
	rdv := &fakeRendezvous{hub: h, me: alice.Identity}
	a, cleanup, err := udp.NewTransport(alice, contract.AcceptAll{}, rdv, udp.Config{ListenAddr: "127.0.0.1:0"}, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	// bob is "online" but nobody reads his signals and he has no endpoint.
	bobPeer := domain.Peer{Identity: bob.Identity, Online: true}
	for range 2 {
		_, err := a.OpenStream(context.Background(), bobPeer)
		if !errors.Is(err, ports.ErrUnreachable) {
			t.Fatalf("OpenStream = %v, want ErrUnreachable", err)
		}
	}
	if n := logs.count("cannot reach bob: "); n != 1 {
		t.Fatalf("%d INFO lines 'cannot reach bob', want 1", n)
	}
	att := a.Attempts()
	if len(att) < 2 || att[0].Err == nil || att[1].Err == nil || att[0].Detail == "" {
		t.Fatalf("attempts %+v, want two failures with a reason", att)
	}
}

// A peer on another host (none of its addresses is ours) may list
// loopback addresses; dialling them would reach whatever listens on our
// own loopback, so they are skipped — even when the transport found there
// would prove the peer's key.
func TestLoopbackCandidatesOfAnotherHostAreNotDialled(t *testing.T) {
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	a := newTransport(t, alice, contract.AcceptAll{}, udp.Config{HandshakeTimeout: 500 * time.Millisecond})
	b := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
	elsewhere := "192.0.2.250:9" // TEST-NET-1, not an address of this host
	peer := domain.Peer{Identity: bob.Identity, Online: true, Endpoints: domain.Endpoints{File: append([]string{elsewhere}, b.Endpoints()...)}}
	_, err := a.OpenStream(context.Background(), peer)
	if !errors.Is(err, domain.ErrPeerOffline) {
		t.Fatalf("OpenStream = %v, want ErrPeerOffline (the loopback candidate skipped)", err)
	}
	if p := a.Path(bob.Identity); !p.IsZero() {
		t.Fatalf("connected over %v", p)
	}
}

// Right after start-up the first STUN round may not have ended when the
// user already sends: the punching signals must still list the reflexive
// addresses, or two peers behind NATs only learn each other's host
// addresses, which they cannot reach. Here both STUN loops are in their
// not-registered backoff when registration completes and alice connects
// at once. alice's STUN server claims a mapping on another host (only
// bob's probes to it would open her NAT); bob's sees no NAT.
func TestSignalsListTheReflexiveAddressRightAfterStartUp(t *testing.T) {
	const key = "session-key"
	h := newHub()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	aliceMapped := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 41000}
	fixed := func(*net.UDPAddr) *net.UDPAddr { return aliceMapped }
	same := func(src *net.UDPAddr) *net.UDPAddr { return src }
	a1, a2 := startSTUN(t, key, key, fixed), startSTUN(t, key, key, fixed)
	b1, b2 := startSTUN(t, key, key, same), startSTUN(t, key, key, same)
	registered := make(chan struct{})
	aRdv := &fakeRendezvous{registered: registered, stun: ports.STUNBinding{Servers: []string{a1.addr(), a2.addr()}, Username: "s1:alice", Key: []byte(key)}}
	bRdv := &fakeRendezvous{registered: registered, stun: ports.STUNBinding{Servers: []string{b1.addr(), b2.addr()}, Username: "s1:bob", Key: []byte(key)}}
	a := newRdvTransport(t, alice, contract.AcceptAll{}, h, aRdv, udp.Config{})
	b := newRdvTransport(t, bob, contract.AcceptAll{}, h, bRdv, udp.Config{})
	toBob, toAlice := h.tapOf(string(bob.Identity.PublicKey())), h.tapOf(string(alice.Identity.PublicKey()))
	waitFor(t, "both STUN loops to find no session", func() bool { return aRdv.stunAsked.Load() > 0 && bRdv.stunAsked.Load() > 0 })
	close(registered)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out := openWithoutEndpoints(ctx, t, a, bob.Identity)
	if p := out.Path(); p.Kind == domain.PathRelayed {
		t.Fatalf("path %+v, want a punched one", p)
	}
	bobPort := b.Endpoints()[0][strings.LastIndex(b.Endpoints()[0], ":")+1:]
	for _, c := range []struct {
		what, want string
		tap        chan ports.Signal
	}{
		{"alice's connect", "srflx " + aliceMapped.String(), toBob},
		{"bob's answer", "srflx 127.0.0.1:" + bobPort, toAlice},
	} {
		select {
		case s := <-c.tap:
			cands, err := udp.SignalCandidates(s.Payload)
			if err != nil {
				t.Fatalf("%s: %v", c.what, err)
			}
			if !slices.Contains(cands, c.want) {
				t.Errorf("%s lists %v, want %q among them", c.what, cands, c.want)
			}
		default:
			t.Errorf("no %s was signalled", c.what)
		}
	}
}
