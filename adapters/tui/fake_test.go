package tui_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"github.com/chatx/chatx/internal/contactsfake"
	"github.com/chatx/chatx/internal/groupsfake"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// fakeClient is a recording ports.Client: it answers from canned data, keeps
// what the UI asked of it, and lets the test push events.
type fakeClient struct {
	groupsfake.Fake
	me     domain.Identity
	events chan ports.Event

	contactsfake.Recorder

	mu          sync.Mutex
	acceptErr   error // what AcceptTransfer returns
	peers       []ports.PeerView
	peersGate   chan struct{} // when set, Peers answers once it is closed
	peersAsked  chan struct{} // when set, Peers signals each call on it (without blocking)
	history     map[string][]domain.Message
	transfers   []domain.Transfer
	safety      map[string]ports.SafetyView
	searchRes   []domain.Message
	sendErr     error
	sent        []sentText
	files       []sentFile
	accepted    []domain.TransferID
	declined    []domain.TransferID
	cancelled   []domain.TransferID
	verified    map[string]bool
	keyAccepted []string
	typing      []string
	searched    []string
	lastSent    domain.Message
}

type sentText struct{ to, text string }
type sentFile struct{ to, path string }

var _ ports.Client = (*fakeClient)(nil)

func identity(t testing.TB, name string) domain.Identity {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	id, err := domain.NewIdentity(domain.MustUsername(name), ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newFake(t testing.TB, me string, peers ...ports.PeerView) *fakeClient {
	return &fakeClient{
		me:       identity(t, me),
		events:   make(chan ports.Event, 64),
		peers:    peers,
		history:  make(map[string][]domain.Message),
		safety:   make(map[string]ports.SafetyView),
		verified: make(map[string]bool),
	}
}

func peer(t testing.TB, name string, online bool) ports.PeerView {
	return ports.PeerView{Peer: domain.Peer{Identity: identity(t, name), Online: online}}
}

// emit pushes an event to the UI.
func (f *fakeClient) emit(t testing.TB, ev ports.Event) {
	t.Helper()
	select {
	case f.events <- ev:
	case <-time.After(5 * time.Second):
		t.Fatal("event not taken")
	}
}

func (f *fakeClient) Whoami() domain.Identity { return f.me }
func (f *fakeClient) Endpoints() domain.Endpoints {
	return domain.Endpoints{Link: []string{"127.0.0.1:4100"}, File: []string{"127.0.0.1:4101"}}
}

func (f *fakeClient) Peers(ctx context.Context) ([]ports.PeerView, error) {
	f.mu.Lock()
	list, gate, asked := slices.Clone(f.peers), f.peersGate, f.peersAsked
	f.mu.Unlock()
	select {
	case asked <- struct{}{}:
	default:
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return list, nil
}

// StartSend is Send, done at once (the terminal UI does not use it).
func (f *fakeClient) StartSend(ctx context.Context, to domain.Username, text string) (func() (domain.Message, error), error) {
	m, err := f.Send(ctx, to, text)
	if err != nil {
		return nil, err
	}
	return func() (domain.Message, error) { return m, nil }, nil
}

func (f *fakeClient) Send(_ context.Context, to domain.Username, text string) (domain.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return domain.Message{}, f.sendErr
	}
	f.sent = append(f.sent, sentText{to.String(), text})
	m, err := domain.NewOutgoingMessage(f.me.Name(), to, text, time.Now())
	f.lastSent = m
	return m, err
}

func (f *fakeClient) Typing(_ context.Context, to domain.Username) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typing = append(f.typing, to.String())
	return nil
}

func (f *fakeClient) MarkRead(context.Context, domain.Username) error { return nil }

func (f *fakeClient) History(_ context.Context, with domain.Username, limit int) ([]domain.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.history[with.String()]
	if len(h) > limit {
		h = h[len(h)-limit:]
	}
	return slices.Clone(h), nil
}

func (f *fakeClient) Search(_ context.Context, query string, _ int) ([]domain.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.searched = append(f.searched, query)
	return slices.Clone(f.searchRes), nil
}

func (f *fakeClient) SendFile(_ context.Context, to domain.Username, path string) (domain.Transfer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files = append(f.files, sentFile{to.String(), path})
	m, err := domain.NewManifest(path, []domain.FileEntry{{Path: domain.SafeFileName(path), Size: 10}})
	if err != nil {
		return domain.Transfer{}, err
	}
	return domain.NewTransfer(domain.NewTransferID(), to, domain.Outgoing, m, time.Now())
}

func (f *fakeClient) AcceptTransfer(_ context.Context, id domain.TransferID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepted = append(f.accepted, id)
	return f.acceptErr
}

func (f *fakeClient) DeclineTransfer(_ context.Context, id domain.TransferID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.declined = append(f.declined, id)
	return nil
}

func (f *fakeClient) CancelTransfer(_ context.Context, id domain.TransferID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *fakeClient) Transfers(context.Context) ([]domain.Transfer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.transfers), nil
}

func (f *fakeClient) Safety(_ context.Context, name domain.Username) (ports.SafetyView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sv, ok := f.safety[name.String()]
	if !ok {
		return ports.SafetyView{}, fmt.Errorf("safety of %s: %w", name, domain.ErrUnknownPeer)
	}
	sv.Verified = f.verified[name.String()]
	return sv, nil
}

func (f *fakeClient) SetVerified(_ context.Context, name domain.Username, verified bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified[name.String()] = verified
	return nil
}

func (f *fakeClient) AcceptKeyChange(_ context.Context, name domain.Username) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keyAccepted = append(f.keyAccepted, name.String())
	return nil
}

func (f *fakeClient) Subscribe(ctx context.Context) <-chan ports.Event {
	out := make(chan ports.Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-f.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// snapshot reads recorded fields under the lock.
func (f *fakeClient) snapshot(read func(f *fakeClient)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	read(f)
}

// lastID is the ID of the last message Send returned.
func (f *fakeClient) lastID(t testing.TB) domain.MessageID {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastSent.IsZero() {
		t.Fatal("nothing sent")
	}
	return f.lastSent.ID()
}

// deliver stores an incoming message, as the client does, and announces it.
func (f *fakeClient) deliver(t testing.TB, m domain.Message) {
	t.Helper()
	f.mu.Lock()
	f.history[m.Peer().String()] = append(f.history[m.Peer().String()], m)
	f.mu.Unlock()
	f.emit(t, ports.MessageEvent{Message: m})
}

func (f *fakeClient) Reachability(context.Context) ports.ReachabilityReport {
	return ports.ReachabilityReport{NAT: domain.NATEndpointIndependent, Candidates: []string{"host 192.168.1.5:41000", "srflx 203.0.113.9:41000"}}
}
