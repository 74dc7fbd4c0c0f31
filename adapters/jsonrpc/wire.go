package jsonrpc

import "github.com/google/wire"

// ProviderSet provides the JSON-RPC server. The injector supplies the
// ports.Client, the Input and Output (os.Stdin, os.Stdout) and the Options.
var ProviderSet = wire.NewSet(NewServer)
