package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

const mib = 1 << 20

// feed moves a meter at bps bytes per second for d, a sample every step.
func feed(m *meter, c *fakeClock, done *int64, bps float64, d, step time.Duration) {
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		c.advance(step)
		*done += int64(bps * step.Seconds())
		m.observe(*done)
	}
}

func TestMeterAtAKnownSpeed(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newMeter(100*mib, c.now)
	var done int64
	m.observe(done)
	feed(m, c, &done, 10*mib, 4*time.Second, 250*time.Millisecond) // 40 MiB in 4 s
	if r := m.rate(); r != 10*mib {
		t.Fatalf("rate %.0f B/s, want %d", r, 10*mib)
	}
	left, ok := m.eta()
	if !ok || left != 6*time.Second {
		t.Fatalf("ETA %v (known %v), want 6s for 60 MiB at 10 MiB/s", left, ok)
	}
	if got := m.progressLine(); got != "40.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 0:06" {
		t.Fatalf("line %q", got)
	}
	feed(m, c, &done, 10*mib, 6*time.Second, 250*time.Millisecond)
	if m.elapsed() != 10*time.Second || m.average() != 10*mib {
		t.Fatalf("elapsed %v average %.0f, want 10s and %d", m.elapsed(), m.average(), 10*mib)
	}
	if got := m.summary(); got != "100.0 MiB in 10.0 s, average 10.0 MiB/s" {
		t.Fatalf("summary %q", got)
	}
	if left, ok := m.eta(); !ok || left != 0 {
		t.Fatalf("ETA at the end %v %v, want 0", left, ok)
	}
}

func TestMeterFollowsAChangeOfSpeedButAveragesTheWhole(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newMeter(1000*mib, c.now)
	var done int64
	m.observe(done)
	feed(m, c, &done, 20*mib, 10*time.Second, 500*time.Millisecond) // 200 MiB
	feed(m, c, &done, 2*mib, 10*time.Second, 500*time.Millisecond)  // 20 MiB
	// The current rate is the last rateWindow's: the slow part only.
	if r := m.rate(); r != 2*mib {
		t.Fatalf("rate %.0f, want %d", r, 2*mib)
	}
	left, ok := m.eta()
	if want := 390 * time.Second; !ok || left != want { // 780 MiB at 2 MiB/s
		t.Fatalf("ETA %v, want %v", left, want)
	}
	if got := m.progressLine(); !strings.HasSuffix(got, "ETA 6:30") {
		t.Fatalf("line %q", got)
	}
	if avg := m.average(); avg != 11*mib { // 220 MiB in 20 s
		t.Fatalf("average %.0f, want %d", avg, 11*mib)
	}
}

func TestMeterOfAStalledTransferHasNoETA(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newMeter(10*mib, c.now)
	var done int64
	m.observe(done)
	feed(m, c, &done, mib, 2*time.Second, time.Second)
	for i := 0; i < 6; i++ { // ticks without progress
		c.advance(time.Second)
		m.observe(done)
	}
	if r := m.rate(); r != 0 {
		t.Fatalf("rate of a stalled transfer %.0f", r)
	}
	if _, ok := m.eta(); ok {
		t.Fatal("a stalled transfer has an ETA")
	}
	if got := m.progressLine(); got != "2.0 MiB / 10.0 MiB  0 B/s  ETA --:--" {
		t.Fatalf("line %q", got)
	}
}

func TestMeterOfAResumedTransferCountsOnlyWhatMoved(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newMeter(100*mib, c.now)
	done := int64(90 * mib)
	m.observe(done) // 90 MiB were there already
	feed(m, c, &done, 5*mib, 2*time.Second, 100*time.Millisecond)
	if avg := m.average(); avg != 5*mib {
		t.Fatalf("average %.0f, want %d", avg, 5*mib)
	}
	if got := m.summary(); got != "100.0 MiB in 2.0 s, average 5.0 MiB/s (90.0 MiB were there already)" {
		t.Fatalf("summary %q", got)
	}
}

func TestMeterStartsOverWhenTheFarEndLostBytes(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newMeter(100*mib, c.now)
	var done int64
	m.observe(done)
	feed(m, c, &done, 10*mib, 3*time.Second, time.Second)
	done = 0 // the receiver's part was gone: from the start again
	m.observe(done)
	if r := m.rate(); r != 0 {
		t.Fatalf("rate right after a restart %.0f", r)
	}
	feed(m, c, &done, 4*mib, 2*time.Second, time.Second)
	if r := m.rate(); r != 4*mib {
		t.Fatalf("rate after the restart %.0f, want %d", r, 4*mib)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{formatBytes(0), "0 B"},
		{formatBytes(1023), "1023 B"},
		{formatBytes(1536), "1.5 KiB"},
		{formatBytes(215 * mib), "215.0 MiB"},
		{formatBytes(5 << 30), "5.0 GiB"},
		{formatRate(0), "0 B/s"},
		{formatRate(-3), "0 B/s"},
		{formatRate(2.5 * mib), "2.5 MiB/s"},
		{formatDuration(0), "0:00"},
		{formatDuration(59600 * time.Millisecond), "1:00"},
		{formatDuration(3661 * time.Second), "1:01:01"},
		{formatDuration(-time.Second), "0:00"},
		{formatElapsed(4200 * time.Millisecond), "4.2 s"},
		{formatElapsed(90 * time.Second), "1:30"},
		{shown("a\x1b[31mb\u202ec\nd"), "a?[31mb?c?d"},
		{shown("👨\u200d👩\u200d👧"), "👨\u200d👩\u200d👧"},
		{shown("bad\xffutf8"), "bad?utf8"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestConsoleWithoutATerminalPrintsALineEveryFewSeconds(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	var out bytes.Buffer
	con := newConsole(&out, c.now)
	if con.tty {
		t.Fatal("a buffer is no terminal")
	}
	var done int64
	for i := 0; i < 12; i++ { // 12 s at 1 MiB/s, an event every second
		c.advance(time.Second)
		done += mib
		con.progress("photo.jpg → bob", done, 20*mib)
	}
	con.statusf("sent photo.jpg")
	// The first event (1 MiB at 1 s) starts the view; a line 5 s later, and 5 s after that.
	want := "photo.jpg → bob  30%  6.0 MiB / 20.0 MiB  1.0 MiB/s  ETA 0:14\n" +
		"photo.jpg → bob  55%  11.0 MiB / 20.0 MiB  1.0 MiB/s  ETA 0:09\n" +
		"sent photo.jpg\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
