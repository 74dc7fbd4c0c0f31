package udp_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// hub forwards signals between the fake rendezvous of several transports
// in one test, as the registry's event stream would.
type hub struct {
	mu    sync.Mutex
	boxes map[string]chan ports.Signal // by public key
	tap   map[string]chan ports.Signal // copies of what each key is sent
}

func newHub() *hub {
	return &hub{boxes: map[string]chan ports.Signal{}, tap: map[string]chan ports.Signal{}}
}

func (h *hub) box(key string) chan ports.Signal {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.boxes[key]
	if b == nil {
		b = make(chan ports.Signal, 64)
		h.boxes[key] = b
	}
	return b
}

// tapOf returns a channel that gets a copy of every signal sent to key.
func (h *hub) tapOf(key string) chan ports.Signal {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := make(chan ports.Signal, 64)
	h.tap[key] = c
	return c
}

// fakeRendezvous is one client's ports.Rendezvous on a hub.
type fakeRendezvous struct {
	hub    *hub
	me     domain.Identity
	stun   ports.STUNBinding
	relays []ports.RelayServer
	// registered, when set, keeps STUN answering ErrNotRegistered until
	// it is closed (a registration in progress); stunAsked counts calls.
	registered chan struct{}
	stunAsked  atomic.Int32
}

func (f *fakeRendezvous) STUN(context.Context) (ports.STUNBinding, error) {
	f.stunAsked.Add(1)
	if len(f.stun.Servers) == 0 {
		return ports.STUNBinding{}, ports.ErrNoRendezvous
	}
	if f.registered != nil {
		select {
		case <-f.registered:
		default:
			return ports.STUNBinding{}, ports.ErrNotRegistered
		}
	}
	return f.stun, nil
}

func (f *fakeRendezvous) Signal(_ context.Context, to domain.Identity, payload []byte) error {
	if len(payload) > ports.MaxSignalSize {
		return errors.New("signal too large")
	}
	key := string(to.PublicKey())
	sig := ports.Signal{From: f.me, Payload: append([]byte(nil), payload...)}
	f.hub.mu.Lock()
	tap := f.hub.tap[key]
	f.hub.mu.Unlock()
	if tap != nil {
		select {
		case tap <- sig:
		default:
		}
	}
	select {
	case f.hub.box(key) <- sig:
		return nil
	default:
		return errors.New("signal box full")
	}
}

func (f *fakeRendezvous) Signals(ctx context.Context) (<-chan ports.Signal, error) {
	in := f.hub.box(string(f.me.PublicKey()))
	out := make(chan ports.Signal)
	go func() {
		defer close(out)
		for {
			select {
			case s := <-in:
				select {
				case out <- s:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (f *fakeRendezvous) Relays(context.Context) ([]ports.RelayServer, error) {
	if len(f.relays) == 0 {
		return nil, ports.ErrNoRendezvous
	}
	return f.relays, nil
}

// newRdvTransport is a loopback transport with a fake rendezvous on h.
func newRdvTransport(t *testing.T, me domain.LocalIdentity, v ports.PeerVerifier, h *hub, rdv *fakeRendezvous, cfg udp.Config) *udp.Transport {
	t.Helper()
	if rdv == nil {
		rdv = &fakeRendezvous{}
	}
	rdv.hub, rdv.me = h, me.Identity
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	tr, cleanup, err := udp.NewTransport(me, v, rdv, cfg, testLogger())
	if err != nil {
		t.Fatalf("NewTransport: %v", err)
	}
	t.Cleanup(cleanup)
	return tr
}

// refuse is a PeerVerifier that refuses one name and accepts the rest.
type refuse struct{ name string }

func (r refuse) VerifyPeer(_ context.Context, p domain.Identity) error {
	if p.Name().String() == r.name {
		return errors.New("refused by the test")
	}
	return nil
}

var _ ports.PeerVerifier = refuse{}
var _ ports.PeerVerifier = contract.AcceptAll{}

// stunResponder answers authenticated Binding requests like the
// registry's STUN server, claiming mapped(src) as the mapped address.
type stunResponder struct {
	conn     *net.UDPConn
	key      string // answers are signed with this key
	check    string // requests must verify with this key
	mapped   func(src *net.UDPAddr) *net.UDPAddr
	answered chan struct{}
}

// startSTUN answers requests that verify with key, signing answers with
// signKey.
func startSTUN(t *testing.T, key, signKey string, mapped func(*net.UDPAddr) *net.UDPAddr) *stunResponder {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &stunResponder{conn: c, key: signKey, check: key, mapped: mapped, answered: make(chan struct{}, 64)}
	done := make(chan struct{})
	t.Cleanup(func() { _ = c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, src, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil || m.Type != stun.BindingRequest {
				continue
			}
			if stun.NewShortTermIntegrity(r.check).Check(m) != nil {
				continue
			}
			to := r.mapped(src)
			resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: to.IP, Port: to.Port}, stun.NewShortTermIntegrity(r.key), stun.Fingerprint)
			if err != nil {
				continue
			}
			_, _ = c.WriteToUDP(resp.Raw, src)
			select {
			case r.answered <- struct{}{}:
			default:
			}
		}
	}()
	return r
}

func (r *stunResponder) addr() string { return r.conn.LocalAddr().String() }

// waitFor polls cond (state another goroutine sets) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
