package memory

import (
	"context"

	"github.com/google/wire"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// ProviderSet provides every driven port that needs nothing but the
// package's defaults: the stores, the clock (following real time), the key
// store (empty), the event recorder, local files and the downloads folder.
var ProviderSet = wire.NewSet(
	NewRealClock, wire.Bind(new(ports.Clock), new(*Clock)),
	NewKeyStore, wire.Bind(new(ports.KeyStore), new(*KeyStore)),
	NewMessageStore, wire.Bind(new(ports.MessageStore), new(*MessageStore)),
	NewTrustStore, wire.Bind(new(ports.TrustStore), new(*TrustStore)),
	NewTransferStore, wire.Bind(new(ports.TransferStore), new(*TransferStore)),
	NewQuarantineStore, wire.Bind(new(ports.QuarantineStore), new(*QuarantineStore)),
	NewGroupStore, wire.Bind(new(ports.GroupStore), new(*GroupStore)),
	NewAccountStore, wire.Bind(new(ports.AccountStore), new(*AccountStore)),
	NewPresenceStore, wire.Bind(new(ports.PresenceStore), new(*PresenceStore)),
	NewEventRecorder, wire.Bind(new(ports.EventSink), new(*EventRecorder)),
	NewLocalFiles, wire.Bind(new(ports.LocalFiles), new(*LocalFiles)),
	NewDownloads, wire.Bind(new(ports.Downloads), new(*Downloads)),
)

// NetworkSet provides a client's link, file transport and directory on a
// shared *Network. The injector supplies the *Network, the
// domain.LocalIdentity, a ports.PeerVerifier, a ports.RegistryService and a
// DirectoryConfig.
var NetworkSet = wire.NewSet(
	NewHost,
	NewLink, wire.Bind(new(ports.MessageLink), new(*Link)),
	NewFileTransport, wire.Bind(new(ports.FileTransport), new(*FileTransport)),
	NewDirectory, wire.Bind(new(ports.Directory), new(*Directory)),
)

// VerifierFunc adapts a function to ports.PeerVerifier.
type VerifierFunc func(ctx context.Context, presented domain.Identity) error

// VerifyPeer calls f.
func (f VerifierFunc) VerifyPeer(ctx context.Context, presented domain.Identity) error {
	return f(ctx, presented)
}

// AcceptAll is a ports.PeerVerifier that accepts every peer whose key the
// link authenticated. For tests of transports only: a client must check
// pins and the directory.
var AcceptAll ports.PeerVerifier = VerifierFunc(func(context.Context, domain.Identity) error { return nil })
