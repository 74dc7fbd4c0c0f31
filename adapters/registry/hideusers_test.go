package registry_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

// TestHideUsersListsNobodyButLooksUpByName: with --list-users=false the
// registry answers GET /v1/online with 403 listing_disabled and its
// presence stream holds nobody, while a lookup by exact name still works.
func TestHideUsersListsNobodyButLooksUpByName(t *testing.T) {
	t.Parallel()
	cfg := fastConfig(t.TempDir(), "")
	cfg.HideUsers = true
	ts := startServer(t, cfg, app.RegistryOptions{})
	ctx := t.Context()
	alice, bob := newClient(t, ts.url, t.TempDir()), newClient(t, ts.url, t.TempDir())
	aliceID := newLocal(t, "alice")
	if err := alice.Register(ctx, aliceID, domain.Endpoints{Link: []string{"192.168.7.7:7000"}}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Register(ctx, newLocal(t, "bob"), domain.Endpoints{}); err != nil {
		t.Fatal(err)
	}
	p, err := bob.Lookup(ctx, domain.MustUsername("alice"))
	if err != nil || !p.Online || !p.Identity.SameKey(aliceID.PublicKey()) {
		t.Fatalf("lookup by name: %+v, %v", p, err)
	}
	if _, err := bob.Online(ctx); err == nil {
		t.Fatal("Online listed users of a registry that hides them")
	}

	base := strings.TrimSuffix(strings.SplitN(string(ts.url), "#", 2)[0], "/")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the test's own server
	resp, err := hc.Get(base + "/v1/online")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Code string } `json:"error"`
		Code  string                `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || (body.Code != "listing_disabled" && body.Error.Code != "listing_disabled") {
		t.Fatalf("GET /v1/online: %d %+v, want 403 listing_disabled", resp.StatusCode, body)
	}

	resp, err = hc.Get(base + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "event: presence" {
			t.Fatal("the presence stream of a registry that hides its users named someone")
		}
		if line == "event: synced" {
			return
		}
	}
	t.Fatalf("the stream ended before it synced: %v", sc.Err())
}
