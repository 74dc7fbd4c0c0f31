// Package jsonrpc is the scripting front of a ChatX client: newline-delimited
// JSON-RPC 2.0 on a reader and a writer (stdin and stdout of `chatx
// jsonrpc`), for bots, headless receivers and end-to-end tests. Requests
// become calls on the driving port ports.Client; the client's events become
// JSON-RPC notifications. docs/jsonrpc.md is the protocol's reference.
//
// It is a driving adapter: it maps JSON to the use-cases and back and holds
// no rule of its own. It must not reach storage or the network itself, never
// logs message bodies, and treats every input line as hostile (bounded
// before it is read into memory, a bad line answered with an error object,
// never a crash).
package jsonrpc
