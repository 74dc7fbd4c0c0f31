package redisstore

import (
	"github.com/google/wire"

	"github.com/chatx/chatx/ports"
)

// ProviderSet provides every registry store on one Redis connection (Open).
var ProviderSet = wire.NewSet(
	Open,
	NewAccounts, wire.Bind(new(ports.AccountStore), new(*Accounts)),
	NewPresence, wire.Bind(new(ports.PresenceStore), new(*Presence)),
	NewChallenges, wire.Bind(new(ports.ChallengeStore), new(*Challenges)),
	NewBus, wire.Bind(new(ports.PresenceBus), new(*Bus)),
	NewMailbox, wire.Bind(new(ports.MailboxStore), new(*Mailbox)),
	NewPrekeys, wire.Bind(new(ports.PrekeyStore), new(*Prekeys)),
)
