package files

import (
	"github.com/google/wire"

	"github.com/chatx/chatx/ports"
)

// ProviderSet provides the local file reader and the downloads folder.
var ProviderSet = wire.NewSet(
	NewLocalFiles, wire.Bind(new(ports.LocalFiles), new(*LocalFiles)),
	NewDownloads, wire.Bind(new(ports.Downloads), new(*Downloads)),
)
