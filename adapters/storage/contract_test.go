package storage_test

import (
	"testing"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// openStore opens a store in a fresh directory, closed when the test ends.
func openStore(t *testing.T, dir string) *storage.Store {
	t.Helper()
	s, cleanup, err := storage.Open(storage.ProfileDir(dir), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(cleanup)
	return s
}

func TestMessageStoreContract(t *testing.T) {
	contract.MessageStore(t, func(t *testing.T) ports.MessageStore { return openStore(t, t.TempDir()) })
}

func TestTrustStoreContract(t *testing.T) {
	contract.TrustStore(t, func(t *testing.T) ports.TrustStore { return storage.NewContacts(openStore(t, t.TempDir())) })
}

func TestTransferStoreContract(t *testing.T) {
	contract.TransferStore(t, func(t *testing.T) ports.TransferStore {
		return storage.NewTransfers(openStore(t, t.TempDir()))
	})
}

func TestKeyStoreContract(t *testing.T) {
	t.Run("unsealed", func(t *testing.T) {
		contract.KeyStore(t, func(t *testing.T) ports.KeyStore {
			return storage.NewKeyStore(storage.ProfileDir(t.TempDir()), "")
		})
	})
	t.Run("sealed", func(t *testing.T) {
		contract.KeyStore(t, func(t *testing.T) ports.KeyStore {
			return storage.NewKeyStore(storage.ProfileDir(t.TempDir()), "correct horse").WithKDF(cheapKDF)
		})
	})
}

// cheapKDF keeps sealed tests fast under -race; the format and code path
// are the same as with storage.DefaultKDF.
var cheapKDF = storage.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func TestContactRelationsContract(t *testing.T) {
	contract.ContactRelations(t, func(t *testing.T) ports.TrustStore { return storage.NewContacts(openStore(t, t.TempDir())) })
}

func TestQuarantineStoreContract(t *testing.T) {
	contract.QuarantineStore(t, func(t *testing.T) ports.QuarantineStore { return storage.NewQuarantine(openStore(t, t.TempDir())) })
}

func TestGroupStoreContract(t *testing.T) {
	t.Parallel()
	contract.GroupStore(t, func(t *testing.T) ports.GroupStore { return storage.NewGroups(openStore(t, t.TempDir())) })
}
