package chatx_test

import (
	"net"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/internal/turnrest"
)

// TestInitRegistryRunsTheRelay: the registry injector starts the embedded
// TURN relay, which grants an allocation to credentials made with the
// secret the registry hands out; with the relay disabled there is none.
func TestInitRegistryRunsTheRelay(t *testing.T) {
	data := registry.DataDir(t.TempDir())
	reg, cleanup, err := chatx.InitRegistry(chatx.RegistryConfig{
		Server: registry.ServerConfig{Listen: "127.0.0.1:0", Data: data},
		Data:   data,
		Relay:  relay.Config{Listen: "127.0.0.1:0"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if reg.Relay == nil || len(reg.Relay.URLs("")) != 2 {
		t.Fatalf("relay %v, URLs %v", reg.Relay, reg.Relay.URLs(""))
	}
	sock, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	user, pass := turnrest.Credentials(reg.Relay.Secret(), "alice", time.Now().Add(reg.Relay.CredentialTTL()))
	client, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: reg.Relay.Addr().String(), Username: user, Password: pass, Conn: sock})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := client.Allocate()
	if err != nil {
		t.Fatalf("allocate on the registry's relay: %v", err)
	}
	_ = relayed.Close()

	offData := registry.DataDir(t.TempDir())
	off, cleanupOff, err := chatx.InitRegistry(chatx.RegistryConfig{
		Server: registry.ServerConfig{Listen: "127.0.0.1:0", Data: offData},
		Data:   offData,
		Relay:  relay.Config{Disabled: true},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanupOff()
	if off.Relay != nil {
		t.Fatal("--relay=false still runs a relay")
	}
}
