package bench_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/chatx/chatx/adapters/tcp"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
)

// stageRecorder is a slog.Handler that keeps, from the debug records of
// both clients, every app.LogMessageStage and tcp.LogEnvelopeStage (the
// stage, and the message ID: no body is logged) with its time, and drops
// every other record. The latency benchmark installs it as the clients'
// logger and as log/slog's default (the use-cases log through it) when
// CHATX_BENCH_STAGES is set.
type stageRecorder struct {
	mu   sync.Mutex
	recs []stageRecord
}

type stageRecord struct {
	at    time.Time
	stage string // the stage; for the link's records "<kind> <stage>"
	id    string
}

func (r *stageRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *stageRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *stageRecorder) WithGroup(string) slog.Handler            { return r }

func (r *stageRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != app.LogMessageStage && rec.Message != tcp.LogEnvelopeStage {
		return nil
	}
	s := stageRecord{at: rec.Time}
	var kind string
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "stage":
			s.stage = a.Value.String()
		case "id":
			s.id = a.Value.String()
		case "kind":
			kind = a.Value.String()
		}
		return true
	})
	if kind != "" {
		s.stage = kind + " " + s.stage
	}
	r.mu.Lock()
	r.recs = append(r.recs, s)
	r.mu.Unlock()
	return nil
}

// messageStages is the way of one message from alice's Send to her
// Delivered event, in order; the first entry is the Send call and the
// last the event as alice's subscriber saw it (both timed by the
// benchmark).
var messageStages = []string{
	"Send called",
	app.StageOutboxCommitted,   // alice
	app.StageWritten,           // alice's flusher
	"chat frame written",       // alice's link
	"chat frame read",          // bob's link
	app.StageReceived,          // bob
	app.StageStored,            // bob, durable
	app.StageAckQueued,         // bob
	app.StageAckWritten,        // bob
	"delivered frame written",  // bob's link
	"delivered frame read",     // alice's link
	app.StageAcked,             // alice
	app.StageDelivered,         // alice: mark committed, event published
	"Delivered event at alice", // the benchmark's subscriber
}

// stageTimes are the times one message passed each stage (zero: no
// record), in messageStages' order, and when alice's outbox write was
// durable.
type stageTimes struct {
	at      []time.Time
	durable time.Time
}

// byMessage returns, for each message ID, the first time it passed each
// stage.
func (r *stageRecorder) byMessage() map[string]*stageTimes {
	index := make(map[string]int, len(messageStages))
	for i, s := range messageStages {
		index[s] = i
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*stageTimes)
	for _, rec := range r.recs {
		t, ok := out[rec.id]
		if !ok {
			t = &stageTimes{at: make([]time.Time, len(messageStages))}
			out[rec.id] = t
		}
		if rec.stage == app.StageOutboxDurable {
			if t.durable.IsZero() {
				t.durable = rec.at
			}
			continue
		}
		if i, ok := index[rec.stage]; ok && t.at[i].IsZero() {
			t.at[i] = rec.at
		}
	}
	return out
}

// stageBreakdown formats p50, p99 and max of each step between two
// consecutive stages over the messages sent (id → Send call and event
// times), and of the outbox write (Send → durable) and of the wait of
// the Delivered mark for it.
func stageBreakdown(r *stageRecorder, sent map[domain.MessageID][2]time.Time) string {
	times := r.byMessage()
	steps := make([][]time.Duration, len(messageStages))
	var durable, afterDurable []time.Duration
	for id, se := range sent {
		t, ok := times[id.String()]
		if !ok {
			continue
		}
		t.at[0], t.at[len(t.at)-1] = se[0], se[1]
		for i := 1; i < len(t.at); i++ {
			if !t.at[i].IsZero() && !t.at[i-1].IsZero() {
				steps[i] = append(steps[i], t.at[i].Sub(t.at[i-1]))
			}
		}
		if !t.durable.IsZero() {
			durable = append(durable, t.durable.Sub(se[0]))
			// The mark waits for the message's release (its outbox
			// write durable): the part of the last steps that did.
			if ack := t.at[len(t.at)-3]; !ack.IsZero() && t.durable.After(ack) {
				afterDurable = append(afterDurable, t.durable.Sub(ack))
			} else {
				afterDurable = append(afterDurable, 0)
			}
		}
	}
	var b strings.Builder
	row := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			fmt.Fprintf(&b, "%-58s %8s\n", name, "no records")
			return
		}
		p50, p99 := quantileMs(ds, 0.50), quantileMs(ds, 0.99)
		fmt.Fprintf(&b, "%-58s %8.3f %8.3f %8.3f %7d\n", name, p50, p99, float64(ds[len(ds)-1].Microseconds())/1000, len(ds))
	}
	fmt.Fprintf(&b, "%-58s %8s %8s %8s %7s\n", "stage (ms)", "p50", "p99", "max", "msgs")
	for i := 1; i < len(messageStages); i++ {
		row(messageStages[i-1]+" → "+messageStages[i], steps[i])
	}
	row("alice: Send called → outbox durable", durable)
	row("alice: ack taken → outbox durable (mark waits for it)", afterDurable)
	return b.String()
}

var _ slog.Handler = (*stageRecorder)(nil)
