package registry_test

import (
	"testing"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// The suites the Redis store (adapters/redisstore) passes too.

func TestFileAccountStoreContract(t *testing.T) {
	contract.AccountStore(t, func(t *testing.T) ports.AccountStore {
		s, cleanup, err := registry.NewFileAccountStore(registry.DataDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanup)
		return s
	})
}

func TestPresenceStoreContract(t *testing.T) {
	contract.PresenceStore(t, func(*testing.T) ports.PresenceStore { return registry.NewPresenceStore() })
}
