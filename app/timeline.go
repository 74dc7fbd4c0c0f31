package app

import (
	"context"
	"log/slog"

	"github.com/chatx/chatx/domain"
)

// LogMessageStage is the message of the debug record logged (through
// log/slog's default logger) as one of our messages, or one we received,
// passes a stage on its way from Send to the sender's Delivered event. The
// record carries "stage" (one of the Stage constants) and "id" (the
// message ID), never the body. A benchmark reads these records to break a
// message's latency into its stages; below debug level they cost one
// Enabled check.
const LogMessageStage = "message stage"

// The stages of a message, in the order it passes them. At the sender:
const (
	// StageOutboxCommitted: the message is committed to the outbox (not
	// yet durable) and handed to its peer's flusher.
	StageOutboxCommitted = "outbox committed"
	// StageOutboxDurable: the outbox write is durable (Send returns once
	// every message started before it is durable too).
	StageOutboxDurable = "outbox durable"
	// StageWritten: the flusher handed the message to the link.
	StageWritten = "written to link"
	// StageAcked: the peer's acknowledgement reached SendMessage.
	StageAcked = "ack taken"
	// StageMarking: the applier hands the "delivered" mark to the store
	// (MarkStates), after the message's own outbox write is durable.
	StageMarking = "delivered mark written"
	// StageDelivered: the "delivered" mark is committed and the
	// MessageStateEvent published.
	StageDelivered = "delivered published"
)

// At the receiver:
const (
	// StageReceived: the chat reached ReceiveMessage.
	StageReceived = "received"
	// StageStored: the received chat is durable in the store.
	StageStored = "stored"
	// StageAckQueued: its acknowledgement is queued (after every chat the
	// peer sent before it was stored).
	StageAckQueued = "ack queued"
	// StageAckWritten: the acknowledgement was handed to the link.
	StageAckWritten = "ack written to link"
)

// traceStage logs LogMessageStage for id at debug level.
func traceStage(stage string, id domain.MessageID) {
	l := slog.Default()
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.Debug(LogMessageStage, "stage", stage, "id", id.String())
}
