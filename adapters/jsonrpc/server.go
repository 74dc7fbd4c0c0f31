package jsonrpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Input is where requests are read from (stdin in production).
type Input io.Reader

// Output is where responses and notifications are written (stdout in production).
type Output io.Writer

// Defaults of Options.
const (
	DefaultMaxLineBytes = 1 << 20
	DefaultMaxInFlight  = 32
	maxBatch            = 100
	outQueue            = 256
	outBuffer           = 64 << 10 // lines written together at most, in bytes (a longer line is written alone)
)

// Options tune a Server. The zero value is usable.
type Options struct {
	// AutoAccept makes the server accept every incoming offer it is told
	// of, including offers waiting when it starts: for a client that has no
	// auto-accept of its own. `chatx jsonrpc --auto-accept` does not use it:
	// it sets the client's own option (app.Options.AutoAccept), which also
	// applies the size limit; turn on one of the two, not both.
	AutoAccept bool
	// MaxLineBytes bounds one request line; a longer line is answered with
	// an Invalid Request error and skipped without being kept in memory.
	MaxLineBytes int
	// MaxInFlight bounds the requests handled at once; reading waits
	// when that many are running.
	MaxInFlight int
	// Subscribed, if set, is called once Serve has subscribed to the
	// client's events and before it reads a request: start the client
	// there, and the script sees every event from the first ("ready").
	Subscribed func()
}

// Server speaks newline-delimited JSON-RPC 2.0 for one client on one
// input/output pair. Requests are handled concurrently; every line it
// writes (responses and notifications) goes through one writer goroutine, so
// lines never interleave.
type Server struct {
	client  ports.Client
	in      io.Reader
	out     io.Writer
	opts    Options
	logger  *slog.Logger
	handle  map[string]handler
	outq    chan []byte
	outDone chan struct{} // closed when the writer stopped
	broken  chan struct{} // closed when a write failed
	quiet   chan struct{} // closed at shutdown: notifications are dropped from then on
	outErr  error         // set by the writer before broken closes
	failed  chan struct{} // closed by Fail: Serve stops
	fail    sync.Once

	autoMu        sync.Mutex
	autoAccepting map[domain.TransferID]bool
}

// NewServer builds a server for client on in and out. Serve runs it.
func NewServer(client ports.Client, in Input, out Output, opts Options, logger *slog.Logger) *Server {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{client: client, in: in, out: out, opts: opts, logger: logger.With("adapter", "jsonrpc"),
		autoAccepting: make(map[domain.TransferID]bool),
		outq:          make(chan []byte, outQueue), outDone: make(chan struct{}), broken: make(chan struct{}),
		quiet: make(chan struct{}), failed: make(chan struct{})}
	s.handle = s.methods()
	return s
}

// Fail tells the script that the client cannot go on (an "error"
// notification with the error's code, for instance -32008 when the name is
// taken) and makes Serve return: the program then exits with a non-zero
// status. It may be called before Serve starts, and more than once (the
// first error wins).
func (s *Server) Fail(err error) {
	s.fail.Do(func() {
		re := toRPCError(err)
		s.notify("error", re)
		close(s.failed)
	})
}

// orderedMethods change what peers see, so they are handled one after
// another in the order they arrive: 5,000 sends written at once reach the
// peer in that order. The others (reads) run concurrently.
var orderedMethods = map[string]bool{
	"send": true, "typing": true, "markRead": true, "sendFile": true,
	"acceptTransfer": true, "rejectTransfer": true, "declineTransfer": true, "cancelTransfer": true,
	"setVerified": true, "acceptKeyChange": true,
}

// parsedLine is a request line parsed once, as it is read: a batch (parsed
// when it is handled), or one request object — its call, or the error
// response that answers it — and whether it must be handled in arrival
// order: a request of an ordered method, a batch (which may hold one), or
// a line that is not a valid request (answered with an error, in order).
type parsedLine struct {
	line    []byte // without surrounding white space
	batch   bool
	c       call
	errResp any
	ordered bool
}

func parseLine(line []byte) parsedLine {
	line = bytes.TrimSpace(line)
	p := parsedLine{line: line, ordered: true}
	if len(line) > 0 && line[0] == '[' {
		p.batch = true
		return p
	}
	var known bool
	p.c, p.errResp, known = parseCall(line)
	p.ordered = !known || orderedMethods[p.c.method]
	return p
}

// Serve reads requests until the input ends (EOF) or ctx is done, then lets
// the requests in flight finish (on ctx cancel, with a cancelled context),
// writes their responses and returns. It returns nil on EOF and on ctx
// cancellation, and an error when reading or writing failed.
//
// A Read blocked on the input cannot be interrupted: when ctx is cancelled
// Serve sets a read deadline if the input supports one, and otherwise returns
// leaving the reading goroutine to end at the input's next line, EOF or close.
// Serve must not be called twice.
func (s *Server) Serve(ctx context.Context) error {
	go s.writeLoop()

	evCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	events := s.client.Subscribe(evCtx) // before reading, so nothing caused by a request is missed
	if s.opts.Subscribed != nil {
		s.opts.Subscribed()
	}
	var bg sync.WaitGroup // the event pump and auto-accepts
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.pumpEvents(evCtx, events, &bg)
	}()
	if s.opts.AutoAccept {
		bg.Add(1)
		go func() {
			defer bg.Done()
			s.acceptPending(evCtx)
		}()
	}

	lines := make(chan lineOrErr)
	readCtx, stopReading := context.WithCancel(context.Background())
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.readLoop(readCtx, lines)
	}()

	var (
		handlers sync.WaitGroup
		sem      = make(chan struct{}, s.opts.MaxInFlight)
		ordered  = make(chan parsedLine, s.opts.MaxInFlight)
		err      error
		inputEnd bool
	)
	handlers.Add(1)
	go func() { // the ordered lane: in arrival order (pipeline.go)
		defer handlers.Done()
		s.runOrdered(ctx, ordered)
	}()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-s.broken:
			break loop
		case <-s.failed:
			break loop
		case l, ok := <-lines:
			if !ok {
				inputEnd = true
				break loop
			}
			if l.err != nil {
				err = fmt.Errorf("read requests: %w", l.err)
				break loop
			}
			if l.tooLong {
				s.writeError(nil, &rpcError{Code: CodeInvalidRequest,
					Message: fmt.Sprintf("request line longer than %d bytes", s.opts.MaxLineBytes)})
				continue
			}
			p := parseLine(l.line)
			if p.ordered {
				select {
				case ordered <- p:
				case <-ctx.Done():
					break loop
				case <-s.failed:
					break loop
				}
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break loop
			}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				defer func() { <-sem }()
				s.handleLine(ctx, p)
			}()
		}
	}

	close(ordered)
	stopReading()
	if inputEnd {
		<-readDone
	} else if d, ok := s.in.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
		<-readDone
	}
	handlers.Wait()
	stopEvents()
	close(s.quiet) // a pump blocked on a full output must not hold up the shutdown
	bg.Wait()
	close(s.outq)
	<-s.outDone
	if err == nil && s.outErr != nil {
		err = s.outErr
	}
	return err
}

type lineOrErr struct {
	line    []byte
	tooLong bool
	err     error
}

// readLoop reads lines of at most MaxLineBytes (a longer one is skipped
// without being kept) and hands them over until EOF, an error or ctx.
func (s *Server) readLoop(ctx context.Context, lines chan<- lineOrErr) {
	defer close(lines)
	br := bufio.NewReaderSize(s.in, 64<<10)
	for {
		line, tooLong, err := readLine(br, s.opts.MaxLineBytes)
		if len(bytes.TrimSpace(line)) > 0 || tooLong {
			select {
			case lines <- lineOrErr{line: line, tooLong: tooLong}:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				select {
				case lines <- lineOrErr{err: err}:
				case <-ctx.Done():
				}
			}
			return
		}
	}
}

// readLine reads up to the next '\n'. Bytes beyond max are dropped as they
// arrive and the line is reported as too long. At the end of the input the
// last unterminated line comes with io.EOF.
func readLine(br *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(frag) > max+1 { // +1: the newline itself
				tooLong, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong && err == nil {
			return nil, true, nil
		}
		if tooLong {
			return nil, true, err
		}
		if err == nil {
			line = bytes.TrimSuffix(line, []byte("\n"))
		}
		if len(line) > max {
			return nil, true, err
		}
		return line, false, err
	}
}

// writeLoop owns the output: it writes queued lines in order until the
// queue is closed, the lines queued together in one write (a script
// pipelining thousands of sends gets their answers and notifications in
// a few large writes, not a write each), flushed whenever the queue is
// empty. After a write error it keeps draining without writing.
func (s *Server) writeLoop() {
	defer close(s.outDone)
	bw := bufio.NewWriterSize(s.out, outBuffer)
	for b := range s.outq {
		_, err := bw.Write(b)
		if err == nil && len(s.outq) == 0 {
			err = bw.Flush()
		}
		if err != nil {
			s.outErr = fmt.Errorf("write responses: %w", err)
			close(s.broken)
			s.logger.Warn("output failed; stopping", "err", err)
			for range s.outq {
			}
			return
		}
	}
}

// write queues one JSON value as a line. It drops the line when the writer
// has stopped (the output is broken).
func (s *Server) write(v any) { s.writeRaw(encode(v, s.logger), nil) }

// encode renders one JSON value as a line.
func encode(v any, logger *slog.Logger) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<3" stays "<3" for people reading the stream
	if err := enc.Encode(v); err != nil {
		logger.Error("encode response", "err", err)
		buf.Reset()
		_ = enc.Encode(errorResponse{JSONRPC: "2.0", ID: json.RawMessage("null"),
			Error: &rpcError{Code: CodeInternalError, Message: "cannot encode the response"}})
	}
	return buf.Bytes() // Encode ends the value with '\n'
}

// writeRaw queues a line for the writer. It gives up when the writer stopped
// or, if given, when giveUp is closed.
func (s *Server) writeRaw(b []byte, giveUp <-chan struct{}) {
	select {
	case s.outq <- b:
	case <-s.outDone:
	case <-giveUp:
	}
}

func (s *Server) writeError(id json.RawMessage, e *rpcError) {
	if id == nil {
		id = json.RawMessage("null")
	}
	s.write(errorResponse{JSONRPC: "2.0", Error: e, ID: id})
}

func (s *Server) notify(method string, params any) {
	s.writeRaw(encode(notification{JSONRPC: "2.0", Method: method, Params: params}, s.logger), s.quiet)
}

// handleLine answers one line: a request, a notification or a batch.
func (s *Server) handleLine(ctx context.Context, p parsedLine) {
	if !p.batch {
		resp := p.errResp
		if resp == nil {
			resp = s.run(ctx, p.c)
		}
		if resp != nil {
			s.write(resp)
		}
		return
	}
	line := p.line
	if !json.Valid(line) {
		s.writeError(nil, &rpcError{Code: CodeParseError, Message: "parse error: the line is not valid JSON"})
		return
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(line, &batch); err != nil || len(batch) == 0 {
		s.writeError(nil, &rpcError{Code: CodeInvalidRequest, Message: "invalid request: a batch must be a non-empty array"})
		return
	}
	if len(batch) > maxBatch {
		s.writeError(nil, &rpcError{Code: CodeInvalidRequest, Message: fmt.Sprintf("invalid request: a batch holds at most %d requests", maxBatch)})
		return
	}
	out := make([]any, 0, len(batch))
	for _, raw := range batch {
		c, errResp, _ := parseCall(raw)
		if errResp == nil {
			errResp = s.run(ctx, c)
		}
		if errResp != nil {
			out = append(out, errResp)
		}
	}
	if len(out) > 0 {
		s.write(out)
	}
}

// run runs one valid request and returns its response, or nil for a
// notification (a request without id).
func (s *Server) run(ctx context.Context, c call) any {
	h, ok := s.handle[c.method]
	if !ok {
		if c.notification {
			return nil
		}
		return errorResponse{JSONRPC: "2.0", ID: c.id,
			Error: &rpcError{Code: CodeMethodNotFound, Message: fmt.Sprintf("method not found: %q", truncate(c.method, 64))}}
	}
	start := time.Now()
	result, err := h(ctx, c.params)
	return s.respond(c, start, result, err)
}

// call is a request object that passed the checks of JSON-RPC 2.0.
type call struct {
	id           json.RawMessage // to echo
	method       string
	params       json.RawMessage
	notification bool // no id: no response
}

// parseCall parses and checks one request object, in one pass over raw
// (json.Unmarshal checks that raw is valid JSON before it decodes). When
// raw is not a valid request it returns the error response instead: a
// parse error when raw is not JSON at all. known reports whether the
// method name could be read (c.method is set then, even if the request is
// refused for another reason).
func parseCall(raw []byte) (c call, errResp any, known bool) {
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		if _, syntax := errors.AsType[*json.SyntaxError](err); syntax {
			return call{}, errorResponse{JSONRPC: "2.0", ID: json.RawMessage("null"),
				Error: &rpcError{Code: CodeParseError, Message: "parse error: the line is not valid JSON"}}, false
		}
		return call{}, errorResponse{JSONRPC: "2.0", ID: json.RawMessage("null"),
			Error: &rpcError{Code: CodeInvalidRequest, Message: "invalid request: not a request object"}}, false
	}
	method, known := methodName(req.Method)
	id, idOK := checkID(req.ID)
	if req.JSONRPC != "2.0" || !idOK || !known || method == "" {
		return call{method: method}, errorResponse{JSONRPC: "2.0", ID: id,
			Error: &rpcError{Code: CodeInvalidRequest, Message: `invalid request: needs "jsonrpc":"2.0", a method name and an id that is a string, a number or null`}}, known
	}
	return call{id: id, method: method, params: req.Params, notification: req.ID == nil}, nil, true
}

// methodName decodes the method of a request (raw is valid JSON): a
// plain string is read directly, any other through encoding/json. ok is
// false when it is not a string; absent or null reads as "".
func methodName(raw json.RawMessage) (method string, ok bool) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		if body := raw[1 : n-1]; bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
			return string(body), true
		}
	}
	if raw == nil {
		return "", true
	}
	return method, json.Unmarshal(raw, &method) == nil
}

// respond is the response to c given its handler's outcome (nil for a
// notification), logged with the time since start.
func (s *Server) respond(c call, start time.Time, result any, err error) any {
	if err != nil {
		re := toRPCError(err)
		s.logger.Debug("request failed", "method", c.method, "code", re.Code, "err", err, "took", time.Since(start))
		if c.notification {
			return nil
		}
		return errorResponse{JSONRPC: "2.0", ID: c.id, Error: re}
	}
	s.logger.Debug("request", "method", c.method, "took", time.Since(start))
	if c.notification {
		return nil
	}
	return resultResponse{JSONRPC: "2.0", Result: result, ID: c.id}
}

// checkID returns the id to echo (null when absent or invalid) and whether
// it is a valid id: absent, null, a string or a number.
func checkID(raw json.RawMessage) (json.RawMessage, bool) {
	if raw == nil {
		return json.RawMessage("null"), true
	}
	switch c := raw[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9', bytes.Equal(raw, []byte("null")):
		return raw, true
	}
	return json.RawMessage("null"), false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
