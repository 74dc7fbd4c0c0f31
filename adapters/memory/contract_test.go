package memory_test

import (
	"testing"

	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

func TestMessageStoreContract(t *testing.T) {
	contract.MessageStore(t, func(*testing.T) ports.MessageStore { return memory.NewMessageStore() })
}

func TestTrustStoreContract(t *testing.T) {
	contract.TrustStore(t, func(*testing.T) ports.TrustStore { return memory.NewTrustStore() })
}

func TestTransferStoreContract(t *testing.T) {
	contract.TransferStore(t, func(*testing.T) ports.TransferStore { return memory.NewTransferStore() })
}

func TestKeyStoreContract(t *testing.T) {
	contract.KeyStore(t, func(*testing.T) ports.KeyStore { return memory.NewKeyStore() })
}

func TestAccountStoreContract(t *testing.T) {
	contract.AccountStore(t, func(*testing.T) ports.AccountStore { return memory.NewAccountStore() })
}

func TestPresenceStoreContract(t *testing.T) {
	contract.PresenceStore(t, func(*testing.T) ports.PresenceStore { return memory.NewPresenceStore() })
}

func TestMailboxStoreContract(t *testing.T) {
	contract.MailboxStore(t, func(*testing.T) ports.MailboxStore { return memory.NewMailboxStore() })
}

func TestPrekeyStoreContract(t *testing.T) {
	contract.PrekeyStore(t, func(*testing.T) ports.PrekeyStore { return memory.NewPrekeyStore() })
}

func TestMailKeyStoreContract(t *testing.T) {
	contract.MailKeyStore(t, func(*testing.T) ports.MailKeyStore { return memory.NewMailKeyStore() })
}
