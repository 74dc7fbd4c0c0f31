// Package ledger is the soak's independent account (make soak, e2e
// soak_test.go): what the drivers asked the clients to send, and, after the
// faults stopped, what every receiver reported and stored. Compare turns the
// two into one table: per conversation, messages sent / delivered once /
// duplicated / lost / out of order, files offered / byte-identical / corrupt
// / not finished, and beside it the processes' crashes, restarts and peak
// memory and the presence mistakes the sampler counted.
//
// The ledger knows nothing of ChatX's code: it keys messages by the id the
// sender's `send` answered and by the text the driver chose (which carries
// the conversation and a sequence number), and files by transfer id and the
// SHA-256 the driver computed of the bytes it wrote. It is test-only.
package ledger

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
)

// Message is one chat message as the ledger or a client saw it.
type Message struct {
	ID    string
	From  string
	To    string
	Text  string
	State string // the sender's state ("queued", "sent", "delivered", …); "" on the receiver
}

// Transfer is one incoming transfer as the receiver reports it at the end:
// SHA256 is the hash of the file found at SavedAs in its downloads folder
// ("" when there is none).
type Transfer struct {
	ID      string
	From    string
	State   string
	Reason  string
	SavedAs string
	SHA256  string
}

// Observation is everything read back from the clients at the end.
type Observation struct {
	// Received holds, per receiver, the incoming messages of its history in
	// history order (oldest first).
	Received map[string][]Message
	// Outgoing holds, per sender, its own messages with their state.
	Outgoing map[string][]Message
	// Transfers holds, per receiver, its incoming transfers.
	Transfers map[string][]Transfer
}

type sentMsg struct {
	Message
	seq int
}

type offer struct {
	id, from, to, name, sha256 string
	size                       int64
}

// Ledger records what the drivers asked for. It is safe for concurrent use.
type Ledger struct {
	mu          sync.Mutex
	sent        []sentMsg
	unconfirmed map[string]string // text → conversation, for sends without an answer
	offers      []offer
}

// New makes an empty ledger.
func New() *Ledger { return &Ledger{unconfirmed: map[string]string{}} }

// Text is the body a driver sends as message seq of from → to: the
// conversation and the sequence number are in it, so a receiver's copy can
// be matched even when it arrives under another id; pad makes bodies differ
// in length.
func Text(from, to string, seq int, pad string) string {
	return fmt.Sprintf("soak %s>%s #%d %s", from, to, seq, pad)
}

// Sent records a message the sender's `send` accepted (answered with id).
func (l *Ledger) Sent(from, to string, seq int, id, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, sentMsg{Message{ID: id, From: from, To: to, Text: text}, seq})
}

// Unconfirmed records a send that got no answer (the sender was killed or
// stopped with the request in flight): it may or may not have been stored,
// so its arrival is neither required nor a stray.
func (l *Ledger) Unconfirmed(from, to, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unconfirmed[text] = conv(from, to)
}

// Offered records a file the sender's `sendFile` accepted.
func (l *Ledger) Offered(from, to, transferID, name string, size int64, sha256 string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.offers = append(l.offers, offer{transferID, from, to, name, sha256, size})
}

// Counts returns how many messages and files were confirmed so far.
func (l *Ledger) Counts() (messages, files int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent), len(l.offers)
}

func conv(from, to string) string { return from + " → " + to }

// MessageRow is one conversation's message account.
type MessageRow struct {
	Conversation string
	Sent         int // confirmed by the sender's `send`
	Once         int // in the receiver's history exactly once
	Duplicated   int // ledger messages the receiver holds more than once (same id, or same text under another id)
	Lost         int // confirmed, absent at the receiver
	OutOfOrder   int // received after a message the sender sent later
	Corrupt      int // the receiver's text for the id differs from what was sent
	Unacked      int // at the receiver, but the sender's state is not delivered/read
	Unconfirmed  int // sends without an answer that arrived (not an error)
	Strays       int // received messages the ledger never asked for
}

// FileRow is one conversation's file account.
type FileRow struct {
	Conversation string
	Offered      int
	Identical    int // completed and the saved file's SHA-256 matches
	Corrupt      int // completed, but the file is missing or differs
	NoSpace      int // declined or failed for lack of space (the disk fault), said so
	Failed       int // another final state (failed, declined, cancelled)
	NotFinished  int // still offered, accepted, in progress, interrupted or unknown to the receiver
	Reasons      []string
}

// Report is the result table's data.
type Report struct {
	Messages []MessageRow
	Files    []FileRow
}

// Compare matches the ledger against what the clients hold at the end.
func (l *Ledger) Compare(obs Observation) Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	rows := map[string]*MessageRow{}
	row := func(c string) *MessageRow {
		if rows[c] == nil {
			rows[c] = &MessageRow{Conversation: c}
		}
		return rows[c]
	}
	sentState := map[string]string{}
	for _, msgs := range obs.Outgoing {
		for _, m := range msgs {
			sentState[m.ID] = m.State
		}
	}
	byID := map[string]*sentMsg{}
	byText := map[string]*sentMsg{}
	for i := range l.sent {
		s := &l.sent[i]
		byID[s.ID] = s
		byText[s.Text] = s
		row(conv(s.From, s.To)).Sent++
	}
	// What each receiver holds, per ledger message.
	seen := map[*sentMsg]int{}
	for receiver, msgs := range obs.Received {
		maxSeq := map[string]int{}
		for _, m := range msgs {
			c := conv(m.From, receiver)
			s := byID[m.ID]
			if s == nil {
				s = byText[m.Text]
			} else if s.Text != m.Text {
				row(c).Corrupt++
			}
			if s == nil || s.To != receiver || s.From != m.From {
				if cv, ok := l.unconfirmed[m.Text]; ok && cv == c {
					row(c).Unconfirmed++
					continue
				}
				row(c).Strays++
				continue
			}
			seen[s]++
			if seen[s] > 1 {
				continue
			}
			if s.seq < maxSeq[c] {
				row(c).OutOfOrder++
			}
			maxSeq[c] = max(maxSeq[c], s.seq)
		}
	}
	for i := range l.sent {
		s := &l.sent[i]
		r := row(conv(s.From, s.To))
		switch n := seen[s]; {
		case n == 0:
			r.Lost++
			continue
		case n == 1:
			r.Once++
		default:
			r.Duplicated++
		}
		if st := sentState[s.ID]; st != "delivered" && st != "read" {
			r.Unacked++
		}
	}
	var rep Report
	for _, r := range rows {
		rep.Messages = append(rep.Messages, *r)
	}
	sort.Slice(rep.Messages, func(i, j int) bool { return rep.Messages[i].Conversation < rep.Messages[j].Conversation })

	frows := map[string]*FileRow{}
	in := map[string]Transfer{}
	for receiver, trs := range obs.Transfers {
		for _, t := range trs {
			in[receiver+"/"+t.ID] = t
		}
	}
	for _, o := range l.offers {
		c := conv(o.from, o.to)
		if frows[c] == nil {
			frows[c] = &FileRow{Conversation: c}
		}
		r := frows[c]
		r.Offered++
		t, ok := in[o.to+"/"+o.id]
		switch {
		case !ok:
			r.NotFinished++
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s (%s, %d B): unknown to the receiver", o.id, o.name, o.size))
		case t.State == "completed" && t.SHA256 == o.sha256:
			r.Identical++
		case t.State == "completed":
			r.Corrupt++
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s (%s, %d B): completed as %q but sha256 %q, want %q", o.id, o.name, o.size, t.SavedAs, t.SHA256, o.sha256))
		case (t.State == "declined" || t.State == "failed") && noSpace(t.Reason):
			r.NoSpace++
		case t.State == "failed" || t.State == "declined" || t.State == "cancelled":
			r.Failed++
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s (%s, %d B): %s: %s", o.id, o.name, o.size, t.State, t.Reason))
		default:
			r.NotFinished++
			r.Reasons = append(r.Reasons, fmt.Sprintf("%s (%s, %d B): still %s %s", o.id, o.name, o.size, t.State, t.Reason))
		}
	}
	for _, r := range frows {
		rep.Files = append(rep.Files, *r)
	}
	sort.Slice(rep.Files, func(i, j int) bool { return rep.Files[i].Conversation < rep.Files[j].Conversation })
	return rep
}

// noSpace tells a refusal for lack of room (the disk fault) from others.
func noSpace(reason string) bool {
	r := strings.ToLower(reason)
	return strings.Contains(r, "space") || strings.Contains(r, "too large")
}

// Totals sums the rows.
func (r Report) Totals() (MessageRow, FileRow) {
	var m MessageRow
	var f FileRow
	m.Conversation, f.Conversation = "total", "total"
	for _, x := range r.Messages {
		m.Sent += x.Sent
		m.Once += x.Once
		m.Duplicated += x.Duplicated
		m.Lost += x.Lost
		m.OutOfOrder += x.OutOfOrder
		m.Corrupt += x.Corrupt
		m.Unacked += x.Unacked
		m.Unconfirmed += x.Unconfirmed
		m.Strays += x.Strays
	}
	for _, x := range r.Files {
		f.Offered += x.Offered
		f.Identical += x.Identical
		f.Corrupt += x.Corrupt
		f.NoSpace += x.NoSpace
		f.Failed += x.Failed
		f.NotFinished += x.NotFinished
	}
	return m, f
}

// Problems lists what makes the run fail: anything lost, duplicated,
// corrupted, stray, unacknowledged or not finished. Out-of-order arrivals
// are reported, not failed.
func (r Report) Problems() []string {
	m, f := r.Totals()
	var p []string
	add := func(n int, what string) {
		if n > 0 {
			p = append(p, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(m.Lost, "messages lost")
	add(m.Duplicated, "messages duplicated")
	add(m.Corrupt, "messages corrupted")
	add(m.Strays, "messages nobody sent")
	add(m.Unacked, "messages delivered but not acknowledged to the sender")
	add(f.Corrupt, "files corrupt or missing after completion")
	add(f.Failed, "files failed")
	add(f.NotFinished, "files not finished")
	for _, x := range r.Files {
		for _, reason := range x.Reasons {
			p = append(p, "  "+x.Conversation+": "+reason)
		}
	}
	return p
}

// Process is one logical process of the run (the registry or a client)
// across its restarts.
type Process struct {
	Name       string
	Kind       string // "registry" or the client's place in the lab ("cone NAT" …)
	Starts     int
	Kills      int // kill -9 by the fault injector
	Stops      int // SIGSTOP/SIGCONT pairs
	Crashes    int // exits nobody asked for
	Panics     int // "panic:", "fatal error:" or "DATA RACE" lines in its logs
	PeakRSSKiB int64
}

// Presence is the sampler's account of one observer's view.
type Presence struct {
	Samples       int
	OnlineAsOff   int // episodes: a peer up and reachable shown offline longer than the bound
	OfflineAsOn   int // episodes: a peer down shown online longer than the bound
	LongestWrongS float64
}

// Print writes the result table.
func Print(w io.Writer, rep Report, procs []Process, presence map[string]Presence, boundS float64) {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "messages\tsent\tonce\tdup\tlost\tout of order\tcorrupt\tunacked\tunconfirmed arrived\tstrays\t")
	m, f := rep.Totals()
	for _, r := range append(append([]MessageRow(nil), rep.Messages...), m) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", r.Conversation, r.Sent, r.Once, r.Duplicated, r.Lost, r.OutOfOrder, r.Corrupt, r.Unacked, r.Unconfirmed, r.Strays)
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t")
	fmt.Fprintln(tw, "files\toffered\tidentical\tcorrupt\tno space\tfailed\tnot finished\t")
	for _, r := range append(append([]FileRow(nil), rep.Files...), f) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", r.Conversation, r.Offered, r.Identical, r.Corrupt, r.NoSpace, r.Failed, r.NotFinished)
	}
	fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
	fmt.Fprintf(tw, "process\tkind\tstarts\tkill -9\tSIGSTOP\tcrashes\tpanics\tpeak RSS MiB\tpresence samples\tonline shown offline >%.0fs\toffline shown online >%.0fs\tlongest wrong s (any)\t\n", boundS, boundS)
	for _, p := range procs {
		ps := presence[p.Name]
		samples, on, off, longest := "-", "-", "-", "-"
		if p.Kind != "registry" {
			samples, on, off, longest = fmt.Sprint(ps.Samples), fmt.Sprint(ps.OnlineAsOff), fmt.Sprint(ps.OfflineAsOn), fmt.Sprintf("%.0f", ps.LongestWrongS)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t\n", p.Name, p.Kind, p.Starts, p.Kills, p.Stops, p.Crashes, p.Panics, float64(p.PeakRSSKiB)/1024, samples, on, off, longest)
	}
	_ = tw.Flush()
}
