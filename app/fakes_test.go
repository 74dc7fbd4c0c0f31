package app_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// newLocal makes a fresh identity for name.
func mkLocal(t testing.TB, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// fakeDirectory knows a fixed set of peers; Watch streams what tests push.
type fakeDirectory struct {
	mu      sync.Mutex
	peers   map[string]domain.Peer
	lookups int
	events  chan ports.DirectoryEvent
	regErr  error
	reg     []domain.Endpoints
}

func newFakeDirectory(peers ...domain.Peer) *fakeDirectory {
	d := &fakeDirectory{peers: make(map[string]domain.Peer), events: make(chan ports.DirectoryEvent, 64)}
	for _, p := range peers {
		d.peers[p.Name().Key()] = p
	}
	return d
}

func (d *fakeDirectory) set(p domain.Peer) {
	d.mu.Lock()
	d.peers[p.Name().Key()] = p
	d.mu.Unlock()
}

func (d *fakeDirectory) Register(_ context.Context, _ domain.LocalIdentity, eps domain.Endpoints) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reg = append(d.reg, eps)
	return d.regErr
}
func (d *fakeDirectory) Unregister(context.Context) error { return nil }
func (d *fakeDirectory) Lookup(_ context.Context, name domain.Username) (domain.Peer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups++
	p, ok := d.peers[name.Key()]
	if !ok {
		return domain.Peer{}, domain.ErrUnknownPeer
	}
	return p, nil
}
func (d *fakeDirectory) Online(context.Context) ([]domain.Peer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []domain.Peer
	for _, p := range d.peers {
		if p.Online {
			out = append(out, p)
		}
	}
	return out, nil
}
func (d *fakeDirectory) Watch(ctx context.Context) (<-chan ports.DirectoryEvent, error) {
	out := make(chan ports.DirectoryEvent)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-d.events:
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// sentEnvelope is one envelope a fakeLink was asked to write.
type sentEnvelope struct {
	To  domain.Peer
	Env ports.Envelope
}

// fakeLink records what is sent; fail decides, per envelope, whether to fail.
type fakeLink struct {
	mu   sync.Mutex
	sent []sentEnvelope
	fail func(env ports.Envelope, attempt int) error
	seen map[domain.MessageID]int
	wake chan struct{}
}

func newFakeLink() *fakeLink {
	return &fakeLink{seen: make(map[domain.MessageID]int), wake: make(chan struct{}, 1)}
}

func (l *fakeLink) Send(_ context.Context, to domain.Peer, env ports.Envelope) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen[env.MessageID]++
	if l.fail != nil {
		if err := l.fail(env, l.seen[env.MessageID]); err != nil {
			return err
		}
	}
	l.sent = append(l.sent, sentEnvelope{To: to, Env: env})
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}
func (l *fakeLink) Serve(ctx context.Context, _ ports.EnvelopeHandler) error {
	<-ctx.Done()
	return nil
}
func (l *fakeLink) Endpoints() []string { return []string{"fake-link"} }

func (l *fakeLink) Path(domain.Identity) domain.Path { return domain.Path{} }

func (l *fakeLink) envelopes(kind ports.EnvelopeKind) []sentEnvelope {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []sentEnvelope
	for _, s := range l.sent {
		if s.Env.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// waitFor polls cond (cheaply, woken by the link) until it holds or the
// generous timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeTransport streams through a FileReceiver held by the test.
type fakeTransport struct{}

func (fakeTransport) Send(context.Context, domain.Peer, domain.TransferID, int, ports.FileSource, func(int64)) error {
	return errors.New("not used")
}
func (fakeTransport) Serve(ctx context.Context, _ ports.FileReceiver) error { <-ctx.Done(); return nil }

func (fakeTransport) NAT() domain.NATMapping    { return domain.NATUnknown }
func (fakeTransport) Candidates() []string      { return nil }
func (fakeTransport) Attempts() []ports.Attempt { return nil }
func (fakeTransport) Endpoints() []string       { return []string{"fake-files"} }

// fakeDownloads keeps parts and committed files in maps.
type fakeDownloads struct {
	mu        sync.Mutex
	parts     map[string]*fakePart
	committed map[string][]byte
	free      int64
}

func newFakeDownloads() *fakeDownloads {
	return &fakeDownloads{parts: make(map[string]*fakePart), committed: make(map[string][]byte), free: 1 << 40}
}

func partKey(id domain.TransferID, rel string) string { return id.String() + "/" + rel }

func (d *fakeDownloads) OpenPart(id domain.TransferID, rel string) (ports.PartFile, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.parts[partKey(id, rel)]
	if !ok {
		p = &fakePart{d: d, key: partKey(id, rel), rel: rel}
		d.parts[p.key] = p
	}
	return p, nil
}
func (d *fakeDownloads) RemovePart(id domain.TransferID, rel string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.parts, partKey(id, rel))
	return nil
}
func (d *fakeDownloads) Available() (int64, error) { return d.free, nil }

func (d *fakeDownloads) part(id domain.TransferID, rel string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.parts[partKey(id, rel)]
	if !ok {
		return nil, false
	}
	return bytes.Clone(p.data), true
}

type fakePart struct {
	d    *fakeDownloads
	key  string
	rel  string
	data []byte
}

func (p *fakePart) Write(b []byte) (int, error) { p.data = append(p.data, b...); return len(b), nil }
func (p *fakePart) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(p.data)) {
		return 0, io.EOF
	}
	n := copy(b, p.data[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
func (p *fakePart) Size() (int64, error) { return int64(len(p.data)), nil }
func (p *fakePart) Truncate(n int64) error {
	p.data = p.data[:n]
	return nil
}
func (p *fakePart) Commit() (string, error) {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	name := p.rel
	for i := 1; ; i++ {
		if _, taken := p.d.committed[name]; !taken {
			break
		}
		name = fmt.Sprintf("%s (%d)", p.rel, i)
	}
	p.d.committed[name] = p.data
	delete(p.d.parts, p.key)
	return name, nil
}
func (p *fakePart) Close() error { return nil }

// fakeFiles serves files from a map of path → content.
type fakeFiles map[string][]byte

type byteSource struct{ *bytes.Reader }

func (b byteSource) Close() error { return nil }

func (f fakeFiles) Scan(_ context.Context, path string) (string, []domain.FileEntry, error) {
	data, ok := f[path]
	if !ok {
		return "", nil, domain.ErrNotFound
	}
	return path, []domain.FileEntry{{Path: path, Size: int64(len(data))}}, nil
}
func (f fakeFiles) Open(path, rel string) (ports.FileSource, error) {
	data, ok := f[path]
	if !ok || rel != "" {
		return nil, domain.ErrNotFound
	}
	return byteSource{bytes.NewReader(data)}, nil
}

// recorder is an EventSink that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []ports.Event
}

func (r *recorder) Publish(e ports.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) all() []ports.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ports.Event(nil), r.events...)
}
