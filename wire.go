//go:build wireinject

package chatx

import (
	"log/slog"

	"github.com/google/wire"

	"github.com/chatx/chatx/adapters/files"
	"github.com/chatx/chatx/adapters/memory"
	"github.com/chatx/chatx/adapters/redisstore"
	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/adapters/relay"
	"github.com/chatx/chatx/adapters/seal"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/adapters/system"
	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// appSet is what every client shares whatever its adapters: the use-cases,
// the event bus and the peer verifier the links check keys with.
var appSet = wire.NewSet(
	app.NewClient,
	app.NewBus,
	wire.Bind(new(ports.EventSink), new(*app.Bus)),
	app.NewPeerVerifier,
	wire.Bind(new(ports.PeerVerifier), new(*app.PeerVerifier)),
)

// InitClient builds the real client: TCP message link, QUIC file transport,
// the HTTPS registry and LAN discovery composed as directory (either may be
// off), SQLite storage in the profile and the downloads folder on disk.
func InitClient(cfg ClientConfig, me domain.LocalIdentity, logger *slog.Logger) (*app.Client, func(), error) {
	wire.Build(
		wire.FieldsOf(new(ClientConfig), "Profile", "Downloads", "Link", "Files", "Directory", "LAN", "Options"),
		appSet,
		tcp.ProviderSet,
		udp.ProviderSet,
		newRegistryClient,
		newRendezvous,
		newDirectory,
		wire.Bind(new(ports.Directory), new(*app.Directories)),
		storage.Open,
		wire.Bind(new(ports.MessageStore), new(*storage.Store)),
		storage.NewContacts,
		wire.Bind(new(ports.TrustStore), new(*storage.Contacts)),
		storage.NewTransfers,
		wire.Bind(new(ports.TransferStore), new(*storage.Transfers)),
		storage.NewGroups,
		wire.Bind(new(ports.GroupStore), new(*storage.Groups)),
		storage.NewMailKeys,
		wire.Bind(new(ports.MailKeyStore), new(*storage.MailKeys)),
		seal.ProviderSet,
		newMailbox,
		wire.Struct(new(app.MailPorts), "*"),
		storage.NewQuarantine,
		wire.Bind(new(ports.QuarantineStore), new(*storage.Quarantine)),
		files.ProviderSet,
		system.ProviderSet,
	)
	return nil, nil, nil
}

// InitKeyStore opens the identity key store of a profile.
func InitKeyStore(profile storage.ProfileDir, pass storage.Passphrase) ports.KeyStore {
	wire.Build(storage.NewKeyStore, wire.Bind(new(ports.KeyStore), new(*storage.KeyStore)))
	return nil
}

// InitRegistry builds the registry server: the registry service over the
// account file in the data dir and the in-process presence table, behind
// HTTPS, and the embedded TURN relay whose credentials it hands out.
func InitRegistry(cfg RegistryConfig, logger *slog.Logger) (*RegistryServer, func(), error) {
	wire.Build(
		wire.FieldsOf(new(RegistryConfig), "Server", "Data", "Service", "Relay", "Mailbox", "MailboxHTTP"),
		relay.ProviderSet,
		registry.NewServer,
		registry.NewFileAccountStore,
		wire.Bind(new(ports.AccountStore), new(*registry.FileAccountStore)),
		registry.NewPresenceStore,
		wire.Bind(new(ports.PresenceStore), new(*registry.PresenceStore)),
		app.NewRegistry,
		wire.Bind(new(ports.RegistryService), new(*app.Registry)),
		registry.NewFileMailboxStore,
		wire.Bind(new(ports.MailboxStore), new(*registry.FileMailboxStore)),
		registry.NewFilePrekeyStore,
		wire.Bind(new(ports.PrekeyStore), new(*registry.FilePrekeyStore)),
		app.NewRegistryMailbox,
		wire.Bind(new(ports.MailboxService), new(*app.RegistryMailbox)),
		registry.NewMailboxRoutes,
		system.ProviderSet,
		wire.Struct(new(RegistryServer), "*"),
	)
	return nil, nil, nil
}

// InitSharedRegistry builds one of several registry nodes sharing their
// state in Redis (RegistryConfig.Redis, docs/scaling.md): accounts,
// challenges, sessions, the presence event stream, the mailbox and mailbox
// keys; the TLS certificate still lives in the data dir.
func InitSharedRegistry(cfg RegistryConfig, logger *slog.Logger) (*RegistryServer, func(), error) {
	wire.Build(
		wire.FieldsOf(new(RegistryConfig), "Server", "Service", "Relay", "Redis", "Mailbox", "MailboxHTTP"),
		relay.ProviderSet,
		registry.NewServer,
		redisstore.ProviderSet,
		app.NewSharedRegistry,
		wire.Bind(new(ports.RegistryService), new(*app.Registry)),
		app.NewRegistryMailbox,
		wire.Bind(new(ports.MailboxService), new(*app.RegistryMailbox)),
		registry.NewMailboxRoutes,
		system.ProviderSet,
		wire.Struct(new(RegistryServer), "*"),
	)
	return nil, nil, nil
}

// InitMemoryClient builds a client from adapters/memory on an in-process
// network and registry, for tests: the same use-cases, no sockets, no disk.
func InitMemoryClient(network *memory.Network, reg ports.RegistryService, me domain.LocalIdentity, dir memory.DirectoryConfig, opts app.Options) (*app.Client, func(), error) {
	wire.Build(
		appSet,
		memory.NewHost,
		memory.NewLink,
		wire.Bind(new(ports.MessageLink), new(*memory.Link)),
		memory.NewFileTransport,
		wire.Bind(new(ports.FileTransport), new(*memory.FileTransport)),
		newMemoryDirectory,
		wire.Bind(new(ports.Directory), new(*memory.Directory)),
		memory.NewMessageStore,
		wire.Bind(new(ports.MessageStore), new(*memory.MessageStore)),
		memory.NewTrustStore,
		wire.Bind(new(ports.TrustStore), new(*memory.TrustStore)),
		memory.NewTransferStore,
		wire.Bind(new(ports.TransferStore), new(*memory.TransferStore)),
		memory.NewQuarantineStore,
		wire.Bind(new(ports.QuarantineStore), new(*memory.QuarantineStore)),
		memory.NewGroupStore,
		wire.Bind(new(ports.GroupStore), new(*memory.GroupStore)),
		memory.NewLocalFiles,
		wire.Bind(new(ports.LocalFiles), new(*memory.LocalFiles)),
		memory.NewDownloads,
		wire.Bind(new(ports.Downloads), new(*memory.Downloads)),
		memory.NewRealClock,
		wire.Bind(new(ports.Clock), new(*memory.Clock)),
		wire.Value(app.MailPorts{}),
	)
	return nil, nil, nil
}
