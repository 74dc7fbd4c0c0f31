package bench_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chatx/chatx/adapters/storage"
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
	mu    sync.Mutex
	recs  []stageRecord
	disk  []diskRecord
	store string // the client of this handler's records ("" at the root)
	root  *stageRecorder
}

type stageRecord struct {
	at    time.Time
	stage string // the stage; for the link's records "<kind> <stage>"
	id    string
}

// diskRecord is a storage.LogSynced or storage.LogCheckpointed of a
// client's store: when it ended and how long it took.
type diskRecord struct {
	client     string
	checkpoint bool
	commit     bool // a transaction committed (no fsync)
	end        time.Time
	took       time.Duration
	handover   time.Duration // a commit's wait to hand its writes to the syncer
}

func (r *stageRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *stageRecorder) WithGroup(string) slog.Handler            { return r }

// WithAttrs keeps the "client" attribute the cluster gives each client's
// logger, which tells alice's store records from bob's.
func (r *stageRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		if a.Key == "client" {
			return &stageRecorder{store: a.Value.String(), root: r.top()}
		}
	}
	return r
}

func (r *stageRecorder) top() *stageRecorder {
	if r.root != nil {
		return r.root
	}
	return r
}

func (r *stageRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == storage.LogSynced || rec.Message == storage.LogCheckpointed || rec.Message == storage.LogCommitted {
		d := diskRecord{client: r.store, checkpoint: rec.Message == storage.LogCheckpointed,
			commit: rec.Message == storage.LogCommitted, end: rec.Time}
		rec.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "took":
				d.took = a.Value.Duration()
			case "handover":
				d.handover = a.Value.Duration()
			}
			return true
		})
		t := r.top()
		t.mu.Lock()
		t.disk = append(t.disk, d)
		t.mu.Unlock()
		return nil
	}
	if rec.Message != app.LogMessageStage && rec.Message != tcp.LogEnvelopeStage {
		return nil
	}
	r = r.top()
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
// record), in messageStages' order, when alice's outbox write was
// durable and when her delivered mark went to her store.
type stageTimes struct {
	at      []time.Time
	durable time.Time
	marking time.Time // the delivered mark handed to the store
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
		switch rec.stage {
		case app.StageOutboxDurable:
			if t.durable.IsZero() {
				t.durable = rec.at
			}
			continue
		case app.StageMarking:
			if t.marking.IsZero() {
				t.marking = rec.at
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
// times), of the outbox write (Send → durable), of the wait of the
// Delivered mark for it, and of the disk's part: each client's fsyncs of
// its write-ahead log and checkpoints, and how bob's durable store splits
// around the fsync that answered it.
func stageBreakdown(r *stageRecorder, sent map[domain.MessageID][2]time.Time) string {
	times := r.byMessage()
	r.mu.Lock()
	disk := append([]diskRecord(nil), r.disk...)
	r.mu.Unlock()
	syncs := map[string][]diskRecord{}
	var checkpoints []diskRecord
	commits, handovers := map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, d := range disk {
		if d.commit {
			commits[d.client] = append(commits[d.client], d.took)
			handovers[d.client] = append(handovers[d.client], d.handover)
			continue
		}
		if d.checkpoint {
			checkpoints = append(checkpoints, d)
		} else {
			syncs[d.client] = append(syncs[d.client], d)
		}
	}
	// answering is the fsync of client's log that answered a write whose
	// caller was answered at t: the last to end before t.
	answering := func(client string, t time.Time) (diskRecord, bool) {
		ss := syncs[client]
		i := sort.Search(len(ss), func(i int) bool { return ss[i].end.After(t) })
		if i == 0 {
			return diskRecord{}, false
		}
		return ss[i-1], true
	}
	steps := make([][]time.Duration, len(messageStages))
	var durable, afterDurable, marking, toSync, inSync, fromSync, aliceToSync, aliceInSync []time.Duration
	iRecv, iStored := slices.Index(messageStages, app.StageReceived), slices.Index(messageStages, app.StageStored)
	iAcked := slices.Index(messageStages, app.StageAcked)
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
		if mk, ack := t.marking, t.at[iAcked]; !mk.IsZero() && !ack.IsZero() {
			marking = append(marking, mk.Sub(ack))
		}
		if recv, stored := t.at[iRecv], t.at[iStored]; !recv.IsZero() && !stored.IsZero() {
			if d, ok := answering("bob", stored); ok && d.end.After(recv) {
				start := d.end.Add(-d.took)
				toSync = append(toSync, max(0, start.Sub(recv)))
				inSync = append(inSync, d.took)
				fromSync = append(fromSync, stored.Sub(d.end))
			}
		}
		if !t.durable.IsZero() {
			durable = append(durable, t.durable.Sub(se[0]))
			if d, ok := answering("alice", t.durable); ok && d.end.After(se[0]) {
				aliceToSync = append(aliceToSync, max(0, d.end.Add(-d.took).Sub(se[0])))
				aliceInSync = append(aliceInSync, d.took)
			}
			// Delivered waits for the message's release (its outbox
			// write durable): the part of the last steps that did.
			if ack := t.at[iAcked]; !ack.IsZero() && t.durable.After(ack) {
				afterDurable = append(afterDurable, t.durable.Sub(ack))
			} else {
				afterDurable = append(afterDurable, 0)
			}
		}
	}
	var b strings.Builder
	row := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			fmt.Fprintf(&b, "%-58s %8s\n", name, "none")
			return
		}
		p50, p99 := quantileMs(ds, 0.50), quantileMs(ds, 0.99)
		fmt.Fprintf(&b, "%-58s %8.3f %8.3f %8.3f %7d\n", name, p50, p99, float64(ds[len(ds)-1].Microseconds())/1000, len(ds))
	}
	fmt.Fprintf(&b, "%-58s %8s %8s %8s %7s\n", "stage (ms)", "p50", "p99", "max", "count")
	for i := 1; i < len(messageStages); i++ {
		row(messageStages[i-1]+" → "+messageStages[i], steps[i])
	}
	row("alice: Send called → outbox durable", durable)
	row("  of which Send called → its fsync starts", aliceToSync)
	row("  of which that fsync", aliceInSync)
	row("alice: ack taken → outbox durable (Delivered waits for it)", afterDurable)
	row("alice: ack taken → delivered mark handed to the store", marking)
	row("bob: received → the fsync that stored it starts", toSync)
	row("bob: that fsync", inSync)
	row("bob: that fsync ends → stored", fromSync)
	overlap := func(d diskRecord) bool {
		start := d.end.Add(-d.took)
		for _, c := range checkpoints {
			if c.end.After(start) && d.end.After(c.end.Add(-c.took)) {
				return true
			}
		}
		return false
	}
	var with, without []time.Duration
	for _, client := range []string{"alice", "bob"} {
		var ds, cs []time.Duration
		for _, d := range syncs[client] {
			ds = append(ds, d.took)
			if overlap(d) {
				with = append(with, d.took)
			} else {
				without = append(without, d.took)
			}
		}
		for _, c := range checkpoints {
			if c.client == client {
				cs = append(cs, c.took)
			}
		}
		row(client+": every transaction (BEGIN → COMMIT)", commits[client])
		row(client+": its wait to hand its writes to the syncer", handovers[client])
		row(client+": every fsync of the write-ahead log", ds)
		row(client+": every checkpoint", cs)
	}
	row("fsyncs of either log overlapping a checkpoint", with)
	row("fsyncs of either log overlapping none", without)
	return b.String()
}

var _ slog.Handler = (*stageRecorder)(nil)
