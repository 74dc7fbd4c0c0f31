package lan

import (
	"github.com/google/wire"

	"github.com/chatx/chatx/ports"
)

// ProviderSet provides local discovery as a ports.Directory. The root's
// composition (wire.go) uses NewDirectory directly when it composes the LAN
// with the registry; this set is for an injector that runs on the LAN alone.
var ProviderSet = wire.NewSet(NewDirectory, wire.Bind(new(ports.Directory), new(*Directory)))
