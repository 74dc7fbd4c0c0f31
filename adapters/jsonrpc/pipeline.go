package jsonrpc

import (
	"context"
	"time"
)

// maxPendingSends bounds the sends of one connection started and not yet
// answered; beyond, the ordered lane waits for the oldest answer.
const maxPendingSends = 1024

// runOrdered handles the ordered lines (see orderedMethods) in arrival
// order until ordered is closed, and returns once every one is answered.
//
// A line that is one `send` request is started (ports.SendPipeline: its
// recipient checked and its place in the order of our messages taken) and
// its answer queued; an answerer goroutine writes the answers in that
// order, each once its message is stored. So a script writing sends
// without waiting gets them stored together — one fsync for many — and
// still answered, reported and delivered in the order it wrote them. Any
// other ordered line (a batch, sendFile, acceptKeyChange…) first waits
// until every send before it is answered, then runs: what it changes
// cannot overtake, or be overtaken by, the sends around it.
func (s *Server) runOrdered(ctx context.Context, ordered <-chan parsedLine) {
	answers := make(chan func(), maxPendingSends)
	answered := make(chan struct{})
	go func() { // owned by runOrdered, which waits for it
		defer close(answered)
		for answer := range answers {
			answer()
		}
	}()
	for line := range ordered {
		if answer, ok := s.startSendLine(ctx, line); ok {
			answers <- answer
			continue
		}
		drained := make(chan struct{})
		answers <- func() { close(drained) }
		<-drained
		s.handleLine(ctx, line)
	}
	close(answers)
	<-answered
}

// startSendLine starts line if it is a single valid `send` request and
// returns what writes its answer; ok is false for any other line.
func (s *Server) startSendLine(ctx context.Context, line parsedLine) (answer func(), ok bool) {
	if line.batch || line.errResp != nil || line.c.method != "send" {
		return nil, false
	}
	c := line.c
	start := time.Now()
	wait, err := s.startSend(ctx, c.params)
	return func() {
		var result any
		if err == nil {
			result, err = wait()
		}
		if resp := s.respond(c, start, result, err); resp != nil {
			s.write(resp)
		}
	}, true
}
