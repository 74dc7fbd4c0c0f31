package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// A registry may run as several nodes sharing one store (docs/scaling.md).
// The client knows them from --registry: several URLs, comma-separated,
// each with its own pin, or one URL whose DNS name has several addresses
// (then every address must present the same certificate: one pin, or one
// trust-on-first-use entry for the name). It uses one node at a time and
// moves to the next when a request or the presence stream cannot reach
// it or it answers 503 (busy, shedding load): there it registers again
// and resumes the presence stream from its Last-Event-ID.

// node is one registry node and the HTTP clients that reach it.
type node struct {
	base     *url.URL
	dialAddr string // "" dial base.Host; else this address (one of the name's)
	tr       *http.Transport
	hc       *http.Client // plain requests, with a timeout each
	sc       *http.Client // the presence stream, no overall timeout
}

// dialTimeout bounds connecting to one node, so a node whose machine is
// gone (no RST) is left within seconds.
const dialTimeout = 3 * time.Second

// maxNodes bounds the nodes one --registry lists.
const maxNodes = 16

func newNodes(cfg ClientConfig, logger *slog.Logger) ([]*node, error) {
	var out []*node
	for raw := range strings.SplitSeq(string(cfg.URL), ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		base, pin, err := parseRegistryURL(RegistryURL(raw))
		if err != nil {
			return nil, err
		}
		p := &pinner{host: base.Host, pin: pin, log: logger}
		if cfg.Profile != "" {
			p.file = filepath.Join(string(cfg.Profile), KnownHostsFile)
		}
		for _, addr := range nodeAddrs(base) {
			out = append(out, newNode(cfg, base, addr, p))
		}
	}
	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("registry URL: none given")
	case len(out) > maxNodes:
		return nil, fmt.Errorf("registry URL: %d nodes, at most %d", len(out), maxNodes)
	}
	return out, nil
}

// nodeAddrs are the addresses to dial for base: "" (dial the name) unless
// the name resolves to several addresses, then one per address.
func nodeAddrs(base *url.URL) []string {
	host, port := base.Hostname(), base.Port()
	if net.ParseIP(host) != nil || host == "localhost" {
		return []string{""}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil || len(addrs) < 2 {
		return []string{""} // resolved again at each dial, as before
	}
	out := make([]string, 0, min(len(addrs), maxNodes))
	for _, a := range addrs[:min(len(addrs), maxNodes)] {
		out = append(out, net.JoinHostPort(a, port))
	}
	return out
}

// The health check of an HTTP/2 connection to a node (see newNode).
const (
	h2PingAfter   = 10 * time.Second
	h2PingTimeout = 5 * time.Second
)

func newNode(cfg ClientConfig, base *url.URL, dialAddr string, p *pinner) *node {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tlsCfg := p.tlsConfig()
	tlsCfg.ServerName = base.Hostname()
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.RequestTimeout,
		// An HTTP/2 connection that went dead (a network that dropped
		// everything for a while) would carry every request, each to its
		// timeout, until TCP gave up minutes later: a connection silent for
		// h2PingAfter is pinged, and closed when the answer does not come
		// within h2PingTimeout, so the next request dials afresh.
		HTTP2: &http.HTTP2Config{SendPingTimeout: h2PingAfter, PingTimeout: h2PingTimeout, WriteByteTimeout: cfg.RequestTimeout},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dialAddr != "" {
				addr = dialAddr
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	return &node{
		base:     base,
		dialAddr: dialAddr,
		tr:       tr,
		hc:       &http.Client{Transport: tr, Timeout: cfg.RequestTimeout, CheckRedirect: noRedirects},
		sc:       &http.Client{Transport: tr, CheckRedirect: noRedirects},
	}
}

// stunHost is where this node's STUN ports are: the address dialled.
func (n *node) stunHost() string {
	if n.dialAddr != "" {
		h, _, _ := net.SplitHostPort(n.dialAddr)
		return h
	}
	return n.base.Hostname()
}

func (n *node) String() string {
	if n.dialAddr != "" {
		return n.base.Host + "@" + n.dialAddr
	}
	return n.base.Host
}

// node is the node in use.
func (c *Client) node() *node { return c.nodes[int(c.cur.Load())%len(c.nodes)] }

// failover moves to the next node when from (the node a request just
// failed at) is still the one in use; the session registers again there.
// With one node it does nothing.
func (c *Client) failover(from *node, cause error) {
	if len(c.nodes) < 2 || c.ctx.Err() != nil {
		return
	}
	i := int(c.cur.Load())
	if c.nodes[i%len(c.nodes)] != from {
		return // another request moved on already
	}
	if !c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.nodes))) {
		return
	}
	to := c.node()
	c.log.Warn("registry node unreachable or busy; moving to the next", "from", from.String(), "to", to.String(), "err", cause)
	from.tr.CloseIdleConnections()
	// No kick: the session and stream loops get there with their own
	// backoff (a kick here would spin through the nodes when all are
	// down). The stream reconnecting kicks the session, which then
	// registers at the new node.
	c.moved.Store(true)
}

func (c *Client) lastEventID() string {
	if p := c.lastID.Load(); p != nil {
		return *p
	}
	return ""
}

func (c *Client) setLastEventID(id string) { c.lastID.Store(&id) }

// Node is the registry node in use (its host), for diagnostics and tests.
func (c *Client) Node() string { return c.node().String() }
