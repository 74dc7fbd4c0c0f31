package memory

import (
	"github.com/google/wire"

	"github.com/chatx/chatx/ports"
)

// ProviderSet provides every driven port that needs no Network: the stores,
// the clock (following real time), the key store (empty) and the event
// recorder. See NetworkSet for the link, file transport and directory.
var ProviderSet = wire.NewSet(
	NewRealClock, wire.Bind(new(ports.Clock), new(*Clock)),
	NewKeyStore, wire.Bind(new(ports.KeyStore), new(*KeyStore)),
	NewMessageStore, wire.Bind(new(ports.MessageStore), new(*MessageStore)),
	NewTrustStore, wire.Bind(new(ports.TrustStore), new(*TrustStore)),
	NewTransferStore, wire.Bind(new(ports.TransferStore), new(*TransferStore)),
	NewAccountStore, wire.Bind(new(ports.AccountStore), new(*AccountStore)),
	NewPresenceStore, wire.Bind(new(ports.PresenceStore), new(*PresenceStore)),
)
