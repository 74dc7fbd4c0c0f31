package chatx_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/redisstore"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/internal/redistest"
	"github.com/chatx/chatx/ports"
)

// clusterNode is one registry node of an in-process cluster on Redis.
type clusterNode struct {
	reg  *chatx.RegistryServer
	stop func()
	url  string
}

func startNode(t *testing.T, redisURL string) *clusterNode {
	t.Helper()
	data := registry.DataDir(t.TempDir())
	reg, cleanup, err := chatx.InitSharedRegistry(chatx.RegistryConfig{
		// A loaded machine's TLS handshakes may outlast the default 5 s.
		Server: registry.ServerConfig{Listen: "127.0.0.1:0", Data: data, NoSTUN: true, ReadHeaderTimeout: 60 * time.Second,
			ChallengeRate: registry.Rate{PerSecond: 1e6, Burst: 1e6}, RegisterRate: registry.Rate{PerSecond: 1e6, Burst: 1e6}},
		Data:    data,
		Relay:   relay.Config{Disabled: true},
		Service: app.RegistryOptions{},
		Redis:   redisstore.Config{URL: redisstore.URL(redisURL)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Server.Serve(ctx) }()
	n := &clusterNode{reg: reg, url: string(reg.Server.URL())}
	var once sync.Once
	n.stop = func() { once.Do(func() { cancel(); <-done; cleanup() }) }
	t.Cleanup(n.stop)
	return n
}

func newLocalID(t *testing.T, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	me, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return me
}

func dirClient(t *testing.T, urls ...string) *registry.Client {
	t.Helper()
	c, cleanup, err := registry.NewClient(registry.ClientConfig{URL: registry.RegistryURL(strings.Join(urls, ",")),
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, RequestTimeout: 60 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return c
}

// waitOnline follows w until every name in want is online (true) or
// offline (false) as wanted.
func waitPresence(t *testing.T, ctx context.Context, w <-chan ports.DirectoryEvent, want map[string]bool, list func() ([]domain.Peer, error)) {
	t.Helper()
	state := map[string]bool{}
	resync := func() {
		peers, err := list()
		if err != nil {
			return
		}
		clear(state)
		for _, p := range peers {
			state[p.Name().String()] = p.Online
		}
	}
	done := func() bool {
		for n, on := range want {
			if state[n] != on {
				return false
			}
		}
		return true
	}
	resync()
	for !done() {
		select {
		case ev, ok := <-w:
			if !ok {
				t.Fatal("watch closed")
			}
			switch ev.Kind {
			case ports.PeerChanged:
				state[ev.Peer.Name().String()] = ev.Peer.Online
			case ports.Resync, ports.Connected:
				resync()
			}
		case <-ctx.Done():
			var missing []string
			for n, on := range want {
				if state[n] != on {
					missing = append(missing, fmt.Sprintf("%s online=%v", n, on))
				}
			}
			t.Fatalf("presence not reached: %d of %d differ, e.g. %v", len(missing), len(want), missing[:min(5, len(missing))])
		}
	}
}

// clusterClients is how many clients TestClusterPresenceAcrossNodes
// spreads over its three nodes: 60 in `make test` (the race detector makes
// each TLS client costly on two cores), the 200 with CHATX_LONG set
// (or the number it gives).
func clusterClients() int {
	if v := os.Getenv("CHATX_LONG"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 1 {
			return n
		}
		return 200
	}
	return 60
}

// Three nodes on one Redis: clients spread over them (200 with
// CHATX_LONG=1), and a watcher at each node sees all of them online live;
// a user at node 1 and one at node 3 look each other up.
func TestClusterPresenceAcrossNodes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	nodes := []*clusterNode{startNode(t, srv.URL(0)), startNode(t, srv.URL(0)), startNode(t, srv.URL(0))}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var watchers []<-chan ports.DirectoryEvent
	var watcherClients []*registry.Client
	for _, n := range nodes {
		c := dirClient(t, n.url)
		w, err := c.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		watchers, watcherClients = append(watchers, w), append(watcherClients, c)
	}
	clients := clusterClients()
	want := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	// At most 16 connect at once: 200 TLS handshakes at the same instant
	// starve a loaded 2-core machine under the race detector.
	sem := make(chan struct{}, 16)
	for i := range clients {
		name := fmt.Sprintf("user%03d", i)
		want[name] = true
		c := dirClient(t, nodes[i%3].url)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := c.Register(ctx, newLocalID(t, name), domain.Endpoints{Link: []string{"127.0.0.1:9"}}); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, w := range watchers {
		waitPresence(t, ctx, w, want, func() ([]domain.Peer, error) { return watcherClients[i].Online(ctx) })
	}
	p, err := watcherClients[0].Lookup(ctx, domain.MustUsername("user002")) // registered at node 3
	if err != nil || !p.Online || len(p.Endpoints.Link) != 1 {
		t.Fatalf("lookup at node 1 of a user of node 3: %+v %v", p, err)
	}
	st, err := nodes[1].reg.Service.Stats(ctx)
	if err != nil || st.Registered != clients || st.Online != clients {
		t.Fatalf("stats at node 2: %+v %v, want %d registered and online", st, err, clients)
	}
}

// The same name registered with two keys at two nodes at once binds
// exactly once; Redis restarted (append-only file on): the nodes reconnect,
// the binding survives, the loser is still refused and new users bind.
func TestClusterBindRaceAndRedisRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	n1, n2 := startNode(t, srv.URL(0)), startNode(t, srv.URL(0))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for round := range 5 {
		name := fmt.Sprintf("carol%d", round)
		ids := []domain.LocalIdentity{newLocalID(t, name), newLocalID(t, name)}
		cs := []*registry.Client{dirClient(t, n1.url), dirClient(t, n2.url)}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { errs[i] = cs[i].Register(ctx, ids[i], domain.Endpoints{}) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else if !errors.Is(err, domain.ErrNameTaken) {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d of two keys bound %s (%v)", round, won, name, errs)
		}
	}
	winner := newLocalID(t, "dave")
	if err := dirClient(t, n1.url).Register(ctx, winner, domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	// Both nodes serve again on the restarted Redis: the binding is kept
	// (a second key is refused at either node) and a new name binds.
	for _, n := range []*clusterNode{n1, n2} {
		err := dirClient(t, n.url).Register(ctx, newLocalID(t, "dave"), domain.Endpoints{})
		if !errors.Is(err, domain.ErrNameTaken) {
			t.Fatalf("another key for dave after the Redis restart: %v, want ErrNameTaken", err)
		}
	}
	erin := dirClient(t, n2.url)
	if err := erin.Register(ctx, newLocalID(t, "erin"), domain.Endpoints{}); err != nil {
		t.Fatalf("register after the Redis restart: %v", err)
	}
	// Presence flows again between the nodes: node 1's watcher sees erin.
	w := dirClient(t, n1.url)
	ch, err := w.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitPresence(t, ctx, ch, map[string]bool{"erin": true}, func() ([]domain.Peer, error) { return w.Online(ctx) })
	frank := dirClient(t, n2.url)
	if err := frank.Register(ctx, newLocalID(t, "frank"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, ctx, ch, map[string]bool{"erin": true, "frank": true}, func() ([]domain.Peer, error) { return w.Online(ctx) })
	st, err := n1.reg.Service.Stats(ctx)
	if err != nil || st.Registered != 5+3 {
		t.Fatalf("after the restart %+v %v, want 8 names bound", st, err)
	}
}

// A client given two nodes loses the first: it moves to the second,
// registers there, resumes its presence stream from its Last-Event-ID
// (no resync) and sees the changes made meanwhile.
func TestClusterClientFailsOverAndResumes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	n1, n2 := startNode(t, srv.URL(0)), startNode(t, srv.URL(0))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	watcher := dirClient(t, n1.url, n2.url)
	ch, err := watcher.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := watcher.Register(ctx, newLocalID(t, "walter"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	alice := dirClient(t, n2.url)
	if err := alice.Register(ctx, newLocalID(t, "alice"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, ctx, ch, map[string]bool{"alice": true, "walter": true}, func() ([]domain.Peer, error) { return watcher.Online(ctx) })
	n1host := strings.TrimPrefix(strings.SplitN(n1.url, "/#", 2)[0], "https://")
	if watcher.Node() != n1host {
		t.Fatalf("client uses %s, want the first node %s", watcher.Node(), n1host)
	}
	n1.stop()
	bob := dirClient(t, n2.url)
	if err := bob.Register(ctx, newLocalID(t, "bob"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	waitPresence(t, ctx, ch, map[string]bool{"alice": true, "bob": true, "walter": true}, func() ([]domain.Peer, error) { return watcher.Online(ctx) })
	if watcher.Node() == n1host {
		t.Fatal("client still on the stopped node")
	}
	// walter is online through node 2: registered again there (its
	// session at node 1 ended when node 1 stopped and closed its stream).
	for {
		p, err := alice.Lookup(ctx, domain.MustUsername("walter"))
		if err == nil && p.Online {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("walter after the failover: %+v %v", p, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for {
		resp, err := hc.Get(strings.SplitN(n2.url, "/#", 2)[0] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `chatx_registry_stream_resumes_total{outcome="resumed"}`) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("node 2 resumed no stream:\n%s", grepLines(string(b), "resume"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A live session replaced at node 1 reaches a presence stream at node 2
// through the bus as the old session's offline, then the new one's online,
// each with its own rising ID: separate updates there (a single node
// writes the pair at once, ports.PresenceUpdate.More), the same events in
// the same order.
func TestClusterReplacedSessionOfflineThenOnline(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	n1, n2 := startNode(t, srv.URL(0)), startNode(t, srv.URL(0))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	bob := newLocalID(t, "bob")
	register := func(link string) {
		t.Helper()
		ch, err := n1.reg.Service.Challenge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p := domain.RegistryProof{Action: domain.ActionRegister, Name: bob.Name(), Key: bob.PublicKey(), Challenge: ch,
			Endpoints: domain.Endpoints{Link: []string{link}}}
		if _, err := n1.reg.Service.Register(ctx, ports.RegisterRequest{Proof: p, Signature: p.Sign(bob)}); err != nil {
			t.Fatal(err)
		}
	}
	register("10.0.0.1:7000")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.SplitN(n2.url, "/#", 2)[0]+"/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type event struct{ id, kind, data string }
	r := bufio.NewReader(resp.Body)
	next := func() event {
		t.Helper()
		var ev event
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("stream at node 2 ended: %v", err)
			}
			switch line = strings.TrimSuffix(line, "\n"); {
			case line == "" && ev.kind != "":
				return ev
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}
	for ev := next(); ev.kind != "synced"; ev = next() {
	}
	register("10.0.0.2:7000")
	var got []event
	for len(got) < 2 {
		if ev := next(); ev.kind == "presence" && strings.Contains(ev.data, `"name":"bob"`) {
			got = append(got, ev)
		}
	}
	if !strings.Contains(got[0].data, `"online":false`) || !strings.Contains(got[1].data, `"online":true`) ||
		!strings.Contains(got[1].data, "10.0.0.2:7000") || got[0].id == "" || ports.CompareEventIDs(got[0].id, got[1].id) >= 0 {
		t.Fatalf("bob's events at node 2 after his session was replaced at node 1:\n%+v\nwant offline, then online at 10.0.0.2:7000, rising IDs", got)
	}
}
