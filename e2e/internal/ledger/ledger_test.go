package ledger_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/chatx/chatx/e2e/internal/ledger"
)

// TestCompareCountsEveryKindOfMistake feeds the ledger a history with one of
// each mistake and checks each lands in its column and fails the run.
func TestCompareCountsEveryKindOfMistake(t *testing.T) {
	l := ledger.New()
	text := func(seq int) string { return ledger.Text("ann", "bea", seq, "x") }
	for seq := 1; seq <= 6; seq++ {
		l.Sent("ann", "bea", seq, "id"+string(rune('0'+seq)), text(seq))
	}
	l.Unconfirmed("ann", "bea", text(7))
	l.Offered("ann", "bea", "t1", "a.bin", 10, "aaa")
	l.Offered("ann", "bea", "t2", "b.bin", 10, "bbb")
	l.Offered("ann", "bea", "t3", "c.bin", 10, "ccc")
	l.Offered("ann", "bea", "t4", "d.bin", 10, "ddd")
	l.Offered("ann", "bea", "t5", "e.bin", 10, "eee")

	obs := ledger.Observation{
		Received: map[string][]ledger.Message{"bea": {
			{ID: "id1", From: "ann", Text: text(1)},
			{ID: "id3", From: "ann", Text: text(3)},
			{ID: "id2", From: "ann", Text: text(2)},   // out of order
			{ID: "id3", From: "ann", Text: text(3)},   // duplicate, same id
			{ID: "other", From: "ann", Text: text(4)}, // duplicate under another id...
			{ID: "id4", From: "ann", Text: text(4)},   // ...of this one
			{ID: "id5", From: "ann", Text: "changed"}, // corrupt
			{ID: "u7", From: "ann", Text: text(7)},    // unconfirmed, arrived
			{ID: "zz", From: "ann", Text: "hello"},    // stray
			// id6 lost
		}},
		Outgoing: map[string][]ledger.Message{"ann": {
			{ID: "id1", State: "delivered"}, {ID: "id2", State: "read"}, {ID: "id3", State: "delivered"},
			{ID: "id4", State: "delivered"}, {ID: "id5", State: "sent"},
		}},
		Transfers: map[string][]ledger.Transfer{"bea": {
			{ID: "t1", State: "completed", SHA256: "aaa"},
			{ID: "t2", State: "completed", SHA256: "zzz"},
			{ID: "t3", State: "declined", Reason: "too large: 10 B, 0 B free"},
			{ID: "t4", State: "interrupted"},
		}},
	}
	rep := l.Compare(obs)
	if len(rep.Messages) != 1 || len(rep.Files) != 1 {
		t.Fatalf("rows: %+v", rep)
	}
	got := rep.Messages[0]
	want := ledger.MessageRow{Conversation: "ann → bea", Sent: 6, Once: 3, Duplicated: 2, Lost: 1, OutOfOrder: 1,
		Corrupt: 1, Unacked: 1, Unconfirmed: 1, Strays: 1}
	if got != want {
		t.Errorf("messages:\n got %+v\nwant %+v", got, want)
	}
	f := rep.Files[0]
	if f.Offered != 5 || f.Identical != 1 || f.Corrupt != 1 || f.NoSpace != 1 || f.Failed != 0 || f.NotFinished != 2 {
		t.Errorf("files: %+v", f)
	}
	problems := strings.Join(rep.Problems(), "\n")
	for _, p := range []string{"1 messages lost", "2 messages duplicated", "1 messages corrupted", "1 files corrupt", "2 files not finished", "t5 (e.bin, 10 B): unknown to the receiver"} {
		if !strings.Contains(problems, p) {
			t.Errorf("problems lack %q:\n%s", p, problems)
		}
	}
	var out bytes.Buffer
	ledger.Print(&out, rep, []ledger.Process{{Name: "ann", Kind: "public", Starts: 2, Kills: 1, PeakRSSKiB: 2048}},
		map[string]ledger.Presence{"ann": {Samples: 3}}, 45)
	if !strings.Contains(out.String(), "ann → bea") || !strings.Contains(out.String(), "2.0") {
		t.Errorf("table:\n%s", out.String())
	}
}

// TestCleanRunHasNoProblems is the other side: everything once, in order,
// acknowledged, files identical.
func TestCleanRunHasNoProblems(t *testing.T) {
	l := ledger.New()
	l.Sent("ann", "bea", 1, "a", ledger.Text("ann", "bea", 1, ""))
	l.Sent("bea", "ann", 1, "b", ledger.Text("bea", "ann", 1, ""))
	l.Offered("ann", "bea", "t1", "a.bin", 1, "h")
	rep := l.Compare(ledger.Observation{
		Received: map[string][]ledger.Message{
			"bea": {{ID: "a", From: "ann", Text: ledger.Text("ann", "bea", 1, "")}},
			"ann": {{ID: "b", From: "bea", Text: ledger.Text("bea", "ann", 1, "")}},
		},
		Outgoing: map[string][]ledger.Message{
			"ann": {{ID: "a", State: "delivered"}},
			"bea": {{ID: "b", State: "read"}},
		},
		Transfers: map[string][]ledger.Transfer{"bea": {{ID: "t1", State: "completed", SHA256: "h"}}},
	})
	if p := rep.Problems(); len(p) != 0 {
		t.Fatalf("problems in a clean run: %v", p)
	}
	if m, f := rep.Totals(); m.Once != 2 || f.Identical != 1 {
		t.Fatalf("totals %+v %+v", m, f)
	}
}
