package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// The one-shot flows (send, receive) show how a transfer goes. The numbers
// are computed here, from the byte counts the transfer events carry and a
// monotonic clock (time.Now's reading), not from the rate the client
// reports: what the user reads must be right even if that one is not.

// rateWindow is the span the current rate is measured over: long enough to
// smooth the bursts of a network, short enough to follow a change of speed.
const rateWindow = 5 * time.Second

// meter measures one transfer (or a set of them): the current rate over the
// last rateWindow, the time left at that rate, and at the end the average
// speed and the time it took. It is not safe for concurrent use.
type meter struct {
	now       func() time.Time
	total     int64
	started   bool
	start     time.Time
	startDone int64 // bytes there already when we began (a resume): not counted in the average
	last      sample
	samples   []sample // oldest first; samples[0] is at or before now-rateWindow once the window is full
}

type sample struct {
	at   time.Time
	done int64
}

func newMeter(total int64, now func() time.Time) *meter {
	return &meter{total: total, now: now}
}

// observe records that done bytes (of total) are there now. Calling it again
// with the same count (a tick without progress) lets the rate fall.
func (m *meter) observe(done int64) {
	now := m.now()
	if !m.started {
		m.started, m.start, m.startDone = true, now, done
	}
	if done < m.last.done {
		// The far end lost bytes and starts over from done: the old samples
		// say nothing about the speed from here.
		m.samples = nil
		m.startDone = min(m.startDone, done)
	}
	m.last = sample{at: now, done: done}
	m.samples = append(m.samples, m.last)
	for len(m.samples) > 2 && !m.samples[1].at.After(now.Add(-rateWindow)) {
		m.samples = m.samples[1:]
	}
}

// setTotal changes the bytes expected (a set of transfers grew).
func (m *meter) setTotal(total int64) { m.total = total }

// rate is bytes per second over the last rateWindow; 0 until two samples
// span some time.
func (m *meter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(last.done-first.done) / dt
}

// eta is the time left at the current rate; ok is false when it cannot be
// known (no bytes moved lately).
func (m *meter) eta() (left time.Duration, ok bool) {
	r := m.rate()
	rest := m.total - m.last.done
	if rest <= 0 {
		return 0, true
	}
	if r <= 0 {
		return 0, false
	}
	secs := float64(rest) / r
	if secs > float64(math.MaxInt64/int64(time.Second)) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

// elapsed is the time since the first observation, up to the last one.
func (m *meter) elapsed() time.Duration {
	if !m.started {
		return 0
	}
	return m.last.at.Sub(m.start)
}

// average is bytes per second moved from the first observation to the
// last, not counting bytes that were there already; 0 when no time passed.
func (m *meter) average() float64 {
	d := m.elapsed().Seconds()
	if d <= 0 {
		return 0
	}
	return float64(m.last.done-m.startDone) / d
}

// progressLine is what the bar (or a plain line) says while bytes move.
func (m *meter) progressLine() string {
	eta := "ETA --:--"
	if left, ok := m.eta(); ok {
		eta = "ETA " + formatDuration(left)
	}
	return fmt.Sprintf("%s / %s  %s  %s", formatBytes(m.last.done), formatBytes(m.total), formatRate(m.rate()), eta)
}

// summary is the closing line: size, time, average speed.
func (m *meter) summary() string {
	moved := m.last.done - m.startDone
	s := fmt.Sprintf("%s in %s", formatBytes(m.total), formatElapsed(m.elapsed()))
	if avg := m.average(); avg > 0 {
		s += ", average " + formatRate(avg)
	}
	if moved < m.total && m.startDone > 0 {
		s += fmt.Sprintf(" (%s were there already)", formatBytes(m.startDone))
	}
	return s
}

// formatBytes is n in binary units: "512 B", "1.5 KiB", "215.3 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i])
}

// formatRate is a speed in binary units per second.
func formatRate(bps float64) string {
	if bps <= 0 || math.IsNaN(bps) || math.IsInf(bps, 0) {
		return "0 B/s"
	}
	return formatBytes(int64(bps)) + "/s"
}

// formatDuration is d rounded to the second as m:ss or h:mm:ss.
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	h, m, sec := s/3600, s/60%60, s%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	}
	return fmt.Sprintf("%d:%02d", m, sec)
}

// formatElapsed is a time taken: "4.2 s" under a minute, else as
// formatDuration.
func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", max(d, 0).Seconds())
	}
	return formatDuration(d)
}

// isTerminal reports whether w is a terminal (CI and pipes are not).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// plainEvery is how often a progress line is printed when stderr is not a
// terminal.
const plainEvery = 5 * time.Second

// console is stderr for a flow: status lines, and one progress view at a
// time — a bar redrawn in place on a terminal, a line every plainEvery
// otherwise. It is safe for concurrent use.
type console struct {
	mu    sync.Mutex
	out   io.Writer
	tty   bool
	now   func() time.Time
	view  *progressView
	every time.Duration
}

func newConsole(out io.Writer, now func() time.Time) *console {
	return &console{out: out, tty: isTerminal(out), now: now, every: plainEvery}
}

// statusf prints a line, moving the bar out of its way.
func (c *console) statusf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view != nil && c.view.bar != nil {
		_ = c.view.bar.Clear()
	}
	fmt.Fprintf(c.out, format+"\n", args...)
}

// promptf prints a question, leaving the cursor after it.
func (c *console) promptf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.view != nil && c.view.bar != nil {
		_ = c.view.bar.Clear()
	}
	fmt.Fprintf(c.out, format, args...)
}

// progressView shows a meter under a label.
type progressView struct {
	label     string
	m         *meter
	bar       *progressbar.ProgressBar
	lastPlain time.Time
}

// progress shows done of total bytes under label, starting a view when
// none is shown (or when the label changed).
func (c *console) progress(label string, done, total int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.view
	if v == nil || v.label != label {
		c.endLocked()
		v = &progressView{label: label, m: newMeter(total, c.now), lastPlain: c.now()}
		if c.tty && total > 0 {
			v.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(c.out),
				progressbar.OptionSetDescription(label),
				progressbar.OptionSetWidth(24),
				progressbar.OptionShowDescriptionAtLineEnd(),
				progressbar.OptionSetPredictTime(false),
				progressbar.OptionSetElapsedTime(false),
				progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(100*time.Millisecond),
			)
		}
		c.view = v
	}
	if v.m.total != total {
		v.m.setTotal(total)
		if v.bar != nil && total > 0 {
			v.bar.ChangeMax64(total)
		}
	}
	v.m.observe(done)
	line := v.m.progressLine()
	if v.bar != nil {
		v.bar.Describe(label + "  " + line)
		_ = v.bar.Set64(min(done, total))
		return
	}
	if now := c.now(); now.Sub(v.lastPlain) >= c.every {
		v.lastPlain = now
		pct := 100
		if total > 0 {
			pct = int(done * 100 / total)
		}
		fmt.Fprintf(c.out, "%s  %d%%  %s\n", label, pct, line)
	}
}

// tick refreshes the view with no new bytes, so a stalled rate falls.
func (c *console) tick() {
	c.mu.Lock()
	v := c.view
	c.mu.Unlock()
	if v != nil {
		c.progress(v.label, v.m.last.done, v.m.total)
	}
}

// end removes the view (the bar is cleared from the terminal).
func (c *console) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked()
}

func (c *console) endLocked() {
	if c.view != nil && c.view.bar != nil {
		_ = c.view.bar.Clear()
		_ = c.view.bar.Exit()
	}
	c.view = nil
}

// plural is "1 file" or "n files".
func plural(n int, one string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %ss", n, one)
}

// shown makes a string from a peer (a file name, a reason) safe to print on
// a terminal: one line, no control, escape or bidi/format characters (each
// becomes '?', except the zero-width joiner of emoji sequences), valid UTF-8.
func shown(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || (unicode.Is(unicode.Cf, r) && r != '\u200d') { // ZWJ joins emoji
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
