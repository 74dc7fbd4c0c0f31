package jsonrpc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"github.com/chatx/chatx/internal/contactsfake"
	"github.com/chatx/chatx/internal/groupsfake"
	"strconv"
	"sync"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// fakeClient is a recording ports.Client. Each method records its call and
// returns what the test put in the fields; hooks may block to test concurrency.
type fakeClient struct {
	groupsfake.Fake
	me        domain.Identity
	endpoints domain.Endpoints

	mu       sync.Mutex
	calls    []string // "Method arg…"
	peers    []ports.PeerView
	history  []domain.Message
	found    []domain.Message
	sendErr  error
	fileErr  error
	actErr   error
	safety   ports.SafetyView
	transfer []domain.Transfer
	sendHook func(ctx context.Context) // runs inside Send
	// startHook, if set, runs inside StartSend and returns what the send's
	// wait waits for (nil: nothing).
	startHook func(text string) <-chan struct{}
	peerHook  func(ctx context.Context) // runs inside Peers
	accepted  chan domain.TransferID
	typed     chan domain.Username // every Typing call

	events chan ports.Event

	contactsfake.Recorder
}

func newFake() *fakeClient {
	return &fakeClient{
		me:        identity("alice"),
		endpoints: domain.Endpoints{Link: []string{"127.0.0.1:7001"}, File: []string{"127.0.0.1:7002"}},
		events:    make(chan ports.Event, 64),
		accepted:  make(chan domain.TransferID, 64),
		typed:     make(chan domain.Username, 64),
	}
}

func identity(name string) domain.Identity {
	seed := sha256.Sum256([]byte(name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	id, err := domain.NewIdentity(domain.MustUsername(name), priv.Public().(ed25519.PublicKey))
	if err != nil {
		panic(err)
	}
	return id
}

func (f *fakeClient) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeClient) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeClient) Whoami() domain.Identity     { return f.me }
func (f *fakeClient) Endpoints() domain.Endpoints { return f.endpoints }

func (f *fakeClient) Peers(ctx context.Context) ([]ports.PeerView, error) {
	f.record("Peers")
	f.mu.Lock()
	hook := f.peerHook
	f.mu.Unlock()
	if hook != nil {
		hook(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peers, nil
}

// StartSend is Send, finished when wait is called; a startHook, if set,
// decides when each wait returns.
func (f *fakeClient) StartSend(ctx context.Context, to domain.Username, text string) (func() (domain.Message, error), error) {
	f.mu.Lock()
	hook := f.startHook
	f.mu.Unlock()
	var gate <-chan struct{}
	if hook != nil {
		gate = hook(text)
	}
	return func() (domain.Message, error) {
		if gate != nil {
			<-gate
		}
		return f.Send(ctx, to, text)
	}, nil
}

func (f *fakeClient) Send(ctx context.Context, to domain.Username, text string) (domain.Message, error) {
	f.record("Send " + to.String() + " " + text)
	f.mu.Lock()
	hook, err := f.sendHook, f.sendErr
	f.mu.Unlock()
	if hook != nil {
		hook(ctx)
	}
	if err != nil {
		return domain.Message{}, err
	}
	return domain.NewOutgoingMessage(f.me.Name(), to, text, time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
}

func (f *fakeClient) Typing(ctx context.Context, to domain.Username) error {
	f.record("Typing " + to.String())
	select {
	case f.typed <- to:
	default:
	}
	return nil
}

func (f *fakeClient) MarkRead(ctx context.Context, with domain.Username) error {
	f.record("MarkRead " + with.String())
	return nil
}

func (f *fakeClient) History(ctx context.Context, with domain.Username, limit int) ([]domain.Message, error) {
	f.record("History " + with.String() + " " + itoa(limit))
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.history, nil
}

func (f *fakeClient) Search(ctx context.Context, query string, limit int) ([]domain.Message, error) {
	f.record("Search " + query + " " + itoa(limit))
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.found, nil
}

func (f *fakeClient) SendFile(ctx context.Context, to domain.Username, path string) (domain.Transfer, error) {
	f.record("SendFile " + to.String() + " " + path)
	f.mu.Lock()
	err := f.fileErr
	f.mu.Unlock()
	if err != nil {
		return domain.Transfer{}, err
	}
	m, err := domain.NewManifest("photo.jpg", []domain.FileEntry{{Path: "photo.jpg", Size: 1000, Hash: sha256.Sum256([]byte("x"))}})
	if err != nil {
		return domain.Transfer{}, err
	}
	return domain.NewTransfer(domain.TransferID{1, 2, 3}, to, domain.Outgoing, m, time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
}

func (f *fakeClient) act(name string, id domain.TransferID) error {
	f.record(name + " " + id.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.actErr
}

func (f *fakeClient) AcceptTransfer(ctx context.Context, id domain.TransferID) error {
	err := f.act("AcceptTransfer", id)
	f.accepted <- id
	return err
}

func (f *fakeClient) DeclineTransfer(ctx context.Context, id domain.TransferID) error {
	return f.act("DeclineTransfer", id)
}

func (f *fakeClient) CancelTransfer(ctx context.Context, id domain.TransferID) error {
	return f.act("CancelTransfer", id)
}

func (f *fakeClient) Transfers(ctx context.Context) ([]domain.Transfer, error) {
	f.record("Transfers")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.transfer, nil
}

func (f *fakeClient) Safety(ctx context.Context, name domain.Username) (ports.SafetyView, error) {
	f.record("Safety " + name.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.actErr != nil {
		return ports.SafetyView{}, f.actErr
	}
	return f.safety, nil
}

func (f *fakeClient) SetVerified(ctx context.Context, name domain.Username, verified bool) error {
	v := "false"
	if verified {
		v = "true"
	}
	f.record("SetVerified " + name.String() + " " + v)
	return nil
}

func (f *fakeClient) AcceptKeyChange(ctx context.Context, name domain.Username) error {
	f.record("AcceptKeyChange " + name.String())
	return nil
}

// Subscribe forwards the test's events until ctx is done, then closes.
func (f *fakeClient) Subscribe(ctx context.Context) <-chan ports.Event {
	out := make(chan ports.Event)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-f.events:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

var _ ports.Client = (*fakeClient)(nil)

func (f *fakeClient) Reachability(context.Context) ports.ReachabilityReport {
	return ports.ReachabilityReport{NAT: domain.NATEndpointIndependent, Candidates: []string{"host 192.168.1.5:41000", "srflx 203.0.113.9:41000"}}
}
