package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func runReceive(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx receive", "chatx receive [--from NAME] [--yes] [--to DIR] [--keep] [flags]",
		`Waits for file offers without opening the client: logs in with the profile, asks on the terminal
whether to take each offer (y/N; --yes takes them all), shows the progress on stderr and prints
"saved to PATH" on stdout for each file or folder that arrived with its hash verified. It exits once
the transfers it accepted have ended and nothing else is offered, unless --keep. Ctrl-C cancels what
is under way at both ends. Offers from others than --from NAME are left for the client to answer.
Exit status: 0 received, 1 failed, 2 bad usage, 4 cancelled by the sender, 5 --timeout passed,
130 interrupted (Ctrl-C; 0 with --keep when nothing was under way).`, stderr)
	f.registerIdentity(fs)
	f.registerNetwork(fs)
	fs.StringVar(&f.downloads, "to", "", "`dir` to save received files in (default $XDG_DOWNLOAD_DIR/chatx or ~/Downloads/chatx)")
	f.registerMaxIncoming(fs)
	from := fs.String("from", "", "take offers only from `NAME`, who becomes a contact (others wait for the client)")
	yes := fs.Bool("yes", false, "accept every offer (from --from NAME, when given) without asking")
	keep := fs.Bool("keep", false, "keep waiting for more offers after a transfer ended (until Ctrl-C)")
	timeout := fs.Duration("timeout", 0, "give up when no offer was accepted within `duration`; 0 waits until Ctrl-C")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "chatx receive: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	var only domain.Username
	if *from != "" {
		u, err := domain.ParseUsername(*from)
		if err != nil {
			fmt.Fprintf(stderr, "chatx receive: --from: %v\n", err)
			return errUsage
		}
		only = u
	}
	if err := f.resolve(); err != nil {
		return err
	}
	con := newConsole(stderr, time.Now)
	h, err := startHeadless(ctx, &f, app.Options{}, con)
	if err != nil {
		return err
	}
	defer h.close()
	if !only.IsZero() {
		// Naming the sender is adding them: their offer is not a request.
		if err := h.client.AddContact(ctx, only); err != nil {
			con.statusf("could not add %s as a contact yet (%v): their offers may wait as a request", only, err)
		}
	}
	r := &receiveFlow{h: h, con: con, stdout: stdout, stdin: bufio.NewReader(stdin), answers: make(chan answer, 1),
		from: only, yes: *yes, keep: *keep, timeout: *timeout, downloads: f.downloads,
		byID: make(map[domain.TransferID]*incoming), ignored: make(map[domain.TransferID]bool),
		earlier: make(map[string][]domain.Transfer)}
	return r.run(ctx)
}

// incoming is one offer and what became of it.
type incoming struct {
	t        domain.Transfer
	m        *meter
	accepted bool
	ended    bool
	err      error // nil when it completed (or was never accepted)
	// stalled is set while the transfer is interrupted, so it is said once.
	stalled bool
}

type answer struct {
	line string
	err  error
}

// receiveFlow answers offers and follows the accepted transfers.
type receiveFlow struct {
	h         *headless
	con       *console
	stdout    io.Writer
	stdin     *bufio.Reader
	answers   chan answer
	from      domain.Username
	yes, keep bool
	timeout   time.Duration
	downloads string

	byID      map[domain.TransferID]*incoming
	order     []*incoming
	questions []*incoming // offers waiting to be asked about
	asking    *incoming   // the offer whose question is on screen
	ignored   map[domain.TransferID]bool
	earlier   map[string][]domain.Transfer // offers made before we started, by sender (Username.Key)
	completed int
}

func (r *receiveFlow) run(ctx context.Context) error {
	who := ""
	if !r.from.IsZero() {
		who = " from " + r.from.String()
	}
	r.con.statusf("waiting for files%s as %s (fingerprint %s), saving to %s… (Ctrl-C to stop)",
		who, r.h.me.Name(), r.h.me.Fingerprint().Short(), r.downloads)
	// Offers that came before we listened (or in an earlier run) are taken
	// up while their sender is online: a sender that went away for good
	// would leave an accepted transfer we wait for forever.
	if all, err := r.h.client.Transfers(ctx); err == nil {
		for i := len(all) - 1; i >= 0; i-- { // oldest first
			if t := all[i]; t.Direction() == domain.Incoming && t.State() == domain.TransferOffered {
				r.earlier[t.Peer().Key()] = append(r.earlier[t.Peer().Key()], t)
			}
		}
	}
	for _, ts := range r.earlier {
		if len(ts) > 0 && r.h.isOnline(ctx, ts[0].Peer()) {
			r.takeEarlier(ctx, ts[0].Peer())
		}
	}
	ticker := time.NewTicker(tickEvery)
	defer ticker.Stop()
	var deadline <-chan time.Time
	if r.timeout > 0 {
		timer := time.NewTimer(r.timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	for {
		if done, err := r.finished(); done {
			r.drain(ctx)
			return err
		}
		select {
		case <-ctx.Done():
			return r.interrupt()
		case <-deadline:
			if !r.anyAccepted() {
				r.con.end()
				return exitf(exitTimeout, "no offer was accepted within %s", r.timeout)
			}
		case <-ticker.C:
			r.con.tick()
		case a := <-r.answers:
			r.answered(ctx, a)
		case <-r.h.exited:
			r.con.end()
			return r.h.stopped()
		case ev, ok := <-r.h.events:
			if !ok {
				r.con.end()
				return errors.New("the client stopped sending events")
			}
			switch e := ev.(type) {
			case ports.TransferEvent:
				r.apply(ctx, e.Transfer)
			case ports.PresenceEvent:
				if e.Peer.Online {
					r.takeEarlier(ctx, e.Peer.Name())
				}
			case ports.DirectoryStatusEvent:
				if !e.Connected {
					r.con.statusf("registry unreachable (%s); retrying…", shown(e.Err))
				}
			}
		}
	}
}

// finished reports whether the flow is over: without --keep, once a
// transfer it accepted ended and nothing else is accepted or offered.
func (r *receiveFlow) finished() (bool, error) {
	if r.keep || r.asking != nil || len(r.questions) > 0 {
		return false, nil
	}
	ended := false
	for _, in := range r.order {
		if in.accepted && !in.ended {
			return false, nil
		}
		ended = ended || (in.accepted && in.ended)
	}
	if !ended {
		return false, nil
	}
	r.con.end()
	for _, in := range r.order {
		if in.err != nil {
			return true, in.err
		}
	}
	return true, nil
}

// drainTimeout bounds how long receive stays up after the last transfer
// ended, for the senders to hear the result.
const drainTimeout = 5 * time.Second

// drain keeps the client up until the senders of the completed transfers
// went offline (a `chatx send` does so once it heard that its file arrived),
// or drainTimeout passed. The client marks a transfer completed before its
// transport has told the sender, and stopping at once could swallow that
// last word: the sender would wait for us to come back.
func (r *receiveFlow) drain(ctx context.Context) {
	waiting := make(map[string]bool)
	for _, in := range r.order {
		if in.accepted && in.err == nil && r.h.isOnline(ctx, in.t.Peer()) {
			waiting[in.t.Peer().Key()] = true
		}
	}
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	for len(waiting) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case <-r.h.exited:
			return
		case ev, ok := <-r.h.events:
			if !ok {
				return
			}
			if p, isPresence := ev.(ports.PresenceEvent); isPresence && !p.Peer.Online {
				delete(waiting, p.Peer.Name().Key())
			}
		}
	}
}

func (r *receiveFlow) anyAccepted() bool {
	for _, in := range r.order {
		if in.accepted {
			return true
		}
	}
	return false
}

// takeEarlier takes up the offers peer made before we started.
func (r *receiveFlow) takeEarlier(ctx context.Context, peer domain.Username) {
	ts := r.earlier[peer.Key()]
	delete(r.earlier, peer.Key())
	for _, t := range ts {
		r.offer(ctx, t)
	}
}

// offer takes a new offer: ignored (not from --from), accepted (--yes) or
// queued for a question.
func (r *receiveFlow) offer(ctx context.Context, t domain.Transfer) {
	if _, seen := r.byID[t.ID()]; seen {
		return
	}
	if !r.from.IsZero() && !t.Peer().Equal(r.from) {
		if !r.ignored[t.ID()] {
			r.ignored[t.ID()] = true
			r.con.statusf("left an offer from %s for the client to answer (waiting for %s)", t.Peer(), r.from)
		}
		return
	}
	in := &incoming{t: t, m: newMeter(t.Total(), r.con.now)}
	r.byID[t.ID()] = in
	r.order = append(r.order, in)
	if r.yes {
		r.accept(ctx, in)
		return
	}
	r.questions = append(r.questions, in)
	r.askNext()
}

// askNext puts the next question on screen and reads its answer, unless a
// question is on screen already. The read of stdin cannot be interrupted:
// its goroutine ends with the answer, or with the process.
func (r *receiveFlow) askNext() {
	if r.asking != nil || len(r.questions) == 0 {
		return
	}
	r.asking, r.questions = r.questions[0], r.questions[1:]
	t := r.asking.t
	r.con.promptf("%s offers %s (%s). Accept? [y/N] ", t.Peer(), r.describe(t), formatBytes(t.Total()))
	go func() {
		line, err := r.stdin.ReadString('\n')
		r.answers <- answer{line: line, err: err}
	}()
}

func (r *receiveFlow) describe(t domain.Transfer) string {
	name := shown(t.Manifest().Name)
	if t.Manifest().IsFolder() {
		return fmt.Sprintf("the folder %s with %s", name, plural(len(t.Manifest().Files), "file"))
	}
	return name
}

// answered acts on the user's answer to the question on screen.
func (r *receiveFlow) answered(ctx context.Context, a answer) {
	in := r.asking
	r.asking = nil
	if in == nil {
		return
	}
	reply := strings.ToLower(strings.TrimSpace(a.line))
	yes := reply == "y" || reply == "yes"
	if a.err != nil {
		r.con.statusf("(no answer: standard input is closed)")
	}
	switch {
	case in.ended:
		r.con.statusf("%s withdrew the offer of %s", in.t.Peer(), shown(in.t.Manifest().Name))
	case yes:
		r.accept(ctx, in)
	default:
		if err := r.h.client.DeclineTransfer(ctx, in.t.ID()); err != nil {
			r.con.statusf("decline %s: %v", shown(in.t.Manifest().Name), err)
		} else {
			r.con.statusf("declined %s", shown(in.t.Manifest().Name))
		}
		in.ended = true
	}
	r.askNext()
}

// accept accepts an offer; an offer that cannot be taken (too large, no
// room) is declined, and the sender is told.
func (r *receiveFlow) accept(ctx context.Context, in *incoming) {
	name := shown(in.t.Manifest().Name)
	if err := r.h.client.AcceptTransfer(ctx, in.t.ID()); err != nil {
		r.con.statusf("cannot accept %s from %s: %v", name, in.t.Peer(), err)
		if derr := r.h.client.DeclineTransfer(ctx, in.t.ID()); derr != nil {
			r.con.statusf("decline %s: %v", name, derr)
		}
		in.ended = true
		return
	}
	in.accepted = true
	r.con.statusf("accepted %s (%s) from %s", r.describe(in.t), formatBytes(in.t.Total()), in.t.Peer())
}

// apply follows one transfer event.
func (r *receiveFlow) apply(ctx context.Context, t domain.Transfer) {
	if t.Direction() != domain.Incoming {
		return
	}
	in, ok := r.byID[t.ID()]
	if !ok {
		if t.State() == domain.TransferOffered {
			r.offer(ctx, t)
		}
		return
	}
	if in.ended {
		return
	}
	in.t = t
	name := shown(t.Manifest().Name)
	switch t.State() {
	case domain.TransferInProgress, domain.TransferVerifying:
		in.stalled = false
		in.m.observe(t.Done())
		r.showProgress()
	case domain.TransferInterrupted:
		if !in.stalled {
			in.stalled = true
			r.con.statusf("%s: the connection to %s was lost; waiting for it to resume…", name, t.Peer())
		}
	case domain.TransferCompleted:
		in.m.observe(t.Total())
		r.showProgress()
		r.end(in, nil)
		r.completed++
		r.con.statusf("received %s from %s: %s", name, t.Peer(), in.m.summary())
		saved := t.SavedAs()
		if saved == "" {
			saved = t.Manifest().Name
		}
		fmt.Fprintf(r.stdout, "saved to %s\n", shown(filepath.Join(r.downloads, filepath.FromSlash(saved))))
	case domain.TransferCancelled:
		r.end(in, exitf(exitCancelled, "%s: cancelled by the sender (%s)", name, t.Peer()))
	case domain.TransferFailed:
		r.end(in, exitf(exitFailed, "%s failed: %s", name, shown(t.Reason())))
	case domain.TransferDeclined:
		in.ended = true
	}
}

// end records how an accepted transfer (or an offer on screen) ended and
// says so for a failure.
func (r *receiveFlow) end(in *incoming, err error) {
	in.ended = true
	if in.accepted {
		in.err = err
	}
	if err != nil && in.accepted && (r.keep || len(r.order) > 1) { // else it is the flow's closing error
		r.con.statusf("%v", err)
	}
	for i, q := range r.questions {
		if q == in {
			r.questions = append(r.questions[:i], r.questions[i+1:]...)
			break
		}
	}
	r.con.end()
}

// showProgress shows the accepted transfers still moving as one bar.
func (r *receiveFlow) showProgress() {
	var done, total int64
	n := 0
	var last *incoming
	for _, in := range r.order {
		if in.accepted && !in.ended {
			done += in.t.Done()
			total += in.t.Total()
			n++
			last = in
		}
	}
	if n == 0 || total == 0 {
		return
	}
	label := shown(last.t.Manifest().Name)
	if n > 1 {
		label = plural(n, "item")
	}
	r.con.progress(label+" ← "+last.t.Peer().String(), done, total)
}

// interrupt cancels the accepted transfers still under way after Ctrl-C,
// telling the sender.
func (r *receiveFlow) interrupt() error {
	r.con.end()
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	n := 0
	for _, in := range r.order {
		if !in.accepted || in.ended {
			continue
		}
		if err := r.h.client.CancelTransfer(ctx, in.t.ID()); err != nil {
			r.con.statusf("cancel %s: %v", shown(in.t.Manifest().Name), err)
			continue
		}
		n++
	}
	if n > 0 {
		r.h.told()
	}
	switch {
	case n > 0:
		return exitf(exitInterrupted, "interrupted: cancelled %s (the sender is told)", plural(n, "transfer"))
	case r.keep:
		return nil
	}
	return exitf(exitInterrupted, "interrupted")
}
