package jsonrpc

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Error codes. The standard ones come from the JSON-RPC 2.0 specification;
// the application codes (-32001 and below) each stand for one domain error.
// They are part of the protocol (docs/jsonrpc.md): never renumber, only add.
const (
	CodeParseError     = -32700 // the line is not JSON
	CodeInvalidRequest = -32600 // not a valid request object, or the line is too long
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603

	CodeUnknownPeer      = -32001 // domain.ErrUnknownPeer
	CodeKeyChanged       = -32002 // *domain.KeyChangedError; data holds name, old, new
	CodeInvalidName      = -32003 // domain.ErrInvalidUsername
	CodeInvalidMessage   = -32004 // empty, longer than 64 KiB, or not UTF-8
	CodeNotFound         = -32005 // domain.ErrNotFound, or a local file that does not exist
	CodeInvalidState     = -32006 // domain.ErrInvalidTransition
	CodePeerOffline      = -32007 // domain.ErrPeerOffline
	CodeNameTaken        = -32008 // domain.ErrNameTaken
	CodeUnsafePath       = -32009 // domain.ErrUnsafePath
	CodeTooLarge         = -32010 // domain.ErrTooLarge
	CodeTransferRefused  = -32011 // ports.ErrTransferRefused
	CodeIntegrity        = -32012 // ports.ErrIntegrity
	CodePermissionDenied = -32013 // a local file may not be read
	CodeCancelled        = -32014 // the request was cancelled (the server is shutting down)
	CodeBlocked          = -32015 // domain.ErrBlocked: unblock the peer first
	CodeInvalidValue     = -32016 // domain.ErrInvalidNickname or domain.ErrInvalidStatus
)

// request is one JSON-RPC request or notification as read. Method and ID
// stay raw so their types can be checked (a number where a string belongs
// is an invalid request, not a parse error).
type request struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  json.RawMessage `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

// resultResponse and errorResponse are the two forms of a JSON-RPC response.
type resultResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result"`
	ID      json.RawMessage `json:"id"`
}

type errorResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	Error   *rpcError       `json:"error"`
	ID      json.RawMessage `json:"id"`
}

// notification is a JSON-RPC notification the server sends.
type notification struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

// rpcError is a JSON-RPC error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *rpcError) Error() string { return e.Message }

func invalidParams(msg string) *rpcError { return &rpcError{Code: CodeInvalidParams, Message: msg} }

// keyChangedData is the data of a CodeKeyChanged error.
type keyChangedData struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// codeMap maps domain and port errors to application codes, first match wins.
var codeMap = []struct {
	err  error
	code int
}{
	{domain.ErrUnknownPeer, CodeUnknownPeer},
	{domain.ErrBlocked, CodeBlocked},
	{domain.ErrInvalidNickname, CodeInvalidValue},
	{domain.ErrInvalidStatus, CodeInvalidValue},
	{domain.ErrInvalidUsername, CodeInvalidName},
	{domain.ErrEmptyMessage, CodeInvalidMessage},
	{domain.ErrMessageTooLong, CodeInvalidMessage},
	{domain.ErrInvalidUTF8, CodeInvalidMessage},
	{domain.ErrInvalidTransition, CodeInvalidState},
	{domain.ErrPeerOffline, CodePeerOffline},
	{domain.ErrNameTaken, CodeNameTaken},
	{domain.ErrUnsafePath, CodeUnsafePath},
	{domain.ErrTooLarge, CodeTooLarge},
	{ports.ErrTransferRefused, CodeTransferRefused},
	{ports.ErrIntegrity, CodeIntegrity},
	{domain.ErrNotFound, CodeNotFound},
	{fs.ErrNotExist, CodeNotFound},
	{fs.ErrPermission, CodePermissionDenied},
	{context.Canceled, CodeCancelled},
	{context.DeadlineExceeded, CodeCancelled},
}

// toRPCError turns what a handler returned into an error object.
func toRPCError(err error) *rpcError {
	var re *rpcError
	if errors.As(err, &re) {
		return re
	}
	var kc *domain.KeyChangedError
	if errors.As(err, &kc) {
		return &rpcError{Code: CodeKeyChanged, Message: err.Error(),
			Data: keyChangedData{Name: kc.Name.String(), Old: kc.Old.String(), New: kc.New.String()}}
	}
	for _, m := range codeMap {
		if errors.Is(err, m.err) {
			return &rpcError{Code: m.code, Message: err.Error()}
		}
	}
	return &rpcError{Code: CodeInternalError, Message: err.Error()}
}
