package registry

import (
	"github.com/google/wire"

	"github.com/chatx/chatx/ports"
)

// ProviderSet provides the registry server (NewServer, with the file
// account store and the in-memory presence store it runs on) and the
// directory client (NewClient). An injector uses the half it needs; the
// registry service itself (app.NewRegistry) is bound to
// ports.RegistryService by the injector.
var ProviderSet = wire.NewSet(
	NewServer,
	NewFileAccountStore,
	NewPresenceStore,
	wire.Bind(new(ports.AccountStore), new(*FileAccountStore)),
	wire.Bind(new(ports.PresenceStore), new(*PresenceStore)),
	NewClient,
	wire.Bind(new(ports.Directory), new(*Client)),
)
