package registry_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/domain"
)

// A registry answering with a redirect to plain http must not make the
// client follow it: the request (and later the session token) would leave
// the pinned TLS connection.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	var leaked atomic.Int64
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		w.WriteHeader(http.StatusTeapot)
	}))
	defer plain.Close()
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	url := registry.RegistryURL(redirector.URL + "/#sha256=" + registry.Fingerprint(redirector.Certificate().Raw))
	c := newClient(t, url, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	err := c.Register(ctx, newLocal(t, "alice"), domain.Endpoints{})
	var apiErr *registry.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTemporaryRedirect || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("Register through a redirecting registry: %v; want an APIError naming the redirect", err)
	}
	if _, err := c.Lookup(ctx, domain.MustUsername("bob")); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("Lookup through a redirecting registry: %v; want a redirect error", err)
	}
	if n := leaked.Load(); n != 0 {
		t.Fatalf("the plain-http target got %d requests; want 0", n)
	}
}
