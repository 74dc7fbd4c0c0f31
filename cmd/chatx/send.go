package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// cancelTimeout bounds telling the peer about a cancellation on the way out.
const cancelTimeout = 10 * time.Second

// tickEvery refreshes the progress view while no event arrives, so that a
// stalled rate falls and the ETA says so.
const tickEvery = time.Second

func runSend(ctx context.Context, args []string, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx send", "chatx send [flags] NAME PATH...",
		`Sends each file or folder to NAME without opening the client: logs in with the profile, offers
every PATH (each its own transfer), shows the progress on stderr and exits once NAME's client has
verified every file's hash. An offline NAME is waited for ("waiting for NAME to come online…"),
until --timeout or Ctrl-C. Ctrl-C cancels the transfers at both ends.
Exit status: 0 all arrived, 1 failed, 2 bad usage, 3 declined, 4 cancelled by NAME,
5 --timeout passed, 130 interrupted (Ctrl-C).`, stderr)
	f.registerIdentity(fs)
	f.registerNetwork(fs)
	timeout := fs.Duration("timeout", 0, "give up when NAME has not accepted within `duration` (e.g. 10m); 0 waits until Ctrl-C")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		fmt.Fprintln(stderr, "chatx send: give a NAME and at least one PATH")
		fs.Usage()
		return errUsage
	}
	to, err := domain.ParseUsername(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "chatx send: %v\n", err)
		return errUsage
	}
	paths := fs.Args()[1:]
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("send %s: %w", p, err)
		}
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
	if to.Equal(h.me.Name()) {
		return exitf(exitFailed, "%s is this profile's own name", to)
	}
	s := &sendFlow{h: h, con: con, to: to, timeout: *timeout, byID: make(map[domain.TransferID]*outgoing)}
	return s.run(ctx, paths)
}

// outgoing is one offered path and what became of it.
type outgoing struct {
	t        domain.Transfer
	m        *meter
	accepted bool
	// stalled is set while the transfer is interrupted, so it is said once.
	stalled bool
	// ended is set once the transfer reached a terminal state; err is nil
	// when it completed.
	ended bool
	err   error
}

// sendFlow offers paths to one peer and follows the transfers to their end.
type sendFlow struct {
	h       *headless
	con     *console
	to      domain.Username
	timeout time.Duration
	order   []*outgoing
	byID    map[domain.TransferID]*outgoing
	online  bool
	label   string
}

func (s *sendFlow) run(ctx context.Context, paths []string) error {
	for _, p := range paths {
		s.con.statusf("preparing %s…", p)
		t, err := s.h.client.SendFile(ctx, s.to, p)
		if err != nil {
			if ctx.Err() != nil {
				return s.interrupt()
			}
			s.cancelAll()
			return s.offerError(p, err)
		}
		o := &outgoing{t: t, m: newMeter(t.Total(), s.con.now)}
		s.order = append(s.order, o)
		s.byID[t.ID()] = o
	}
	s.label = s.order[0].t.Manifest().Name
	if len(s.order) > 1 {
		s.label = plural(len(s.order), "item")
	}
	s.label = shown(s.label) + " → " + s.to.String()
	s.online = s.h.isOnline(ctx, s.to)
	s.sayWaiting()

	ticker := time.NewTicker(tickEvery)
	defer ticker.Stop()
	var deadline <-chan time.Time
	if s.timeout > 0 {
		timer := time.NewTimer(s.timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	registryLost := false
	for {
		select {
		case <-ctx.Done():
			return s.interrupt()
		case <-deadline:
			if err := s.giveUpWaiting(); err != nil {
				return err
			}
		case <-ticker.C:
			s.con.tick()
		case <-s.h.exited:
			s.con.end()
			return s.h.stopped()
		case ev, ok := <-s.h.events:
			if !ok {
				s.con.end()
				return errors.New("the client stopped sending events")
			}
			switch e := ev.(type) {
			case ports.PresenceEvent:
				if e.Peer.Name().Equal(s.to) && e.Peer.Online != s.online {
					s.online = e.Peer.Online
					s.sayWaiting()
				}
			case ports.DirectoryStatusEvent:
				if !e.Connected && !registryLost {
					s.con.statusf("registry unreachable (%s); retrying…", shown(e.Err))
				} else if e.Connected && registryLost {
					s.con.statusf("registry reachable again")
				}
				registryLost = !e.Connected
			case ports.KeyChangedEvent:
				if e.Name.Equal(s.to) {
					s.con.end()
					return exitf(exitFailed, "%s's key changed (was %s, now %s): nothing more is sent until you compare safety numbers in the client (chatx) and accept the new key",
						s.to, e.Old.Short(), e.New.Short())
				}
			case ports.TransferEvent:
				if done, err := s.apply(e.Transfer); done {
					return err
				}
			}
		}
	}
}

// sayWaiting tells the user what the offers wait for.
func (s *sendFlow) sayWaiting() {
	waiting := false
	for _, o := range s.order {
		if !o.accepted && !o.ended {
			waiting = true
		}
	}
	switch {
	case !s.online:
		s.con.statusf("waiting for %s to come online… (Ctrl-C to give up)", s.to)
	case waiting:
		s.con.statusf("offered %s to %s; waiting for %s to accept…", s.describeOffers(), s.to, s.to)
	}
}

func (s *sendFlow) describeOffers() string {
	var total int64
	for _, o := range s.order {
		total += o.t.Total()
	}
	if len(s.order) == 1 {
		return fmt.Sprintf("%s (%s)", shown(s.order[0].t.Manifest().Name), formatBytes(total))
	}
	return fmt.Sprintf("%s (%s)", plural(len(s.order), "item"), formatBytes(total))
}

// apply follows one transfer event; done reports that every offer ended,
// with the flow's result.
func (s *sendFlow) apply(t domain.Transfer) (done bool, result error) {
	o, ours := s.byID[t.ID()]
	if !ours || o.ended {
		return false, nil
	}
	o.t = t
	name := shown(t.Manifest().Name)
	switch t.State() {
	case domain.TransferAccepted:
		if !o.accepted {
			o.accepted = true
			s.con.statusf("%s accepted %s", s.to, name)
		}
	case domain.TransferInProgress, domain.TransferVerifying:
		o.accepted, o.stalled = true, false
		o.m.observe(t.Done())
		s.showProgress()
	case domain.TransferInterrupted:
		if !o.stalled {
			o.stalled = true
			s.con.statusf("%s: the connection to %s was lost; it resumes when %s is reachable…", name, s.to, s.to)
		}
	case domain.TransferCompleted:
		o.m.observe(t.Total())
		s.showProgress()
		s.end(o, nil)
		s.con.statusf("sent %s to %s: %s", name, s.to, o.m.summary())
	case domain.TransferDeclined:
		reason := ""
		// The stored reason names who declined ("declined by bob: too
		// large…"); the line below says that already.
		if r := strings.TrimPrefix(strings.TrimPrefix(t.Reason(), "declined by "+s.to.String()), ": "); r != "" {
			reason = ": " + shown(r)
		}
		s.end(o, exitf(exitDeclined, "%s declined %s%s", s.to, name, reason))
	case domain.TransferCancelled:
		s.end(o, exitf(exitCancelled, "%s: cancelled by %s", name, s.to))
	case domain.TransferFailed:
		s.end(o, exitf(exitFailed, "%s failed: %s", name, shown(t.Reason())))
	}
	for _, o := range s.order {
		if !o.ended {
			return false, nil
		}
	}
	s.con.end()
	for _, o := range s.order {
		if o.err != nil {
			return true, o.err
		}
	}
	return true, nil
}

// end records how a transfer ended and, for a failure, says so at once.
func (s *sendFlow) end(o *outgoing, err error) {
	o.ended, o.err = true, err
	if err != nil && len(s.order) > 1 { // alone, it is the flow's closing error
		s.con.statusf("%v", err)
	}
	s.con.end()
}

// showProgress shows the bytes of the accepted transfers that are still
// moving, as one bar.
func (s *sendFlow) showProgress() {
	var done, total int64
	for _, o := range s.order {
		if o.accepted && !o.ended {
			done += o.t.Done()
			total += o.t.Total()
		}
	}
	if total > 0 {
		s.con.progress(s.label, done, total)
	}
}

// interrupt cancels what has not ended (telling the receiver) after Ctrl-C.
func (s *sendFlow) interrupt() error {
	s.con.end()
	n := s.cancelAll()
	if n == 0 {
		return exitf(exitInterrupted, "interrupted")
	}
	return exitf(exitInterrupted, "interrupted: cancelled %s (%s is told)", plural(n, "transfer"), s.to)
}

// cancelAll cancels every offer that has not ended; it returns how many.
func (s *sendFlow) cancelAll() int {
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	n := 0
	for _, o := range s.order {
		if o.ended {
			continue
		}
		if err := s.h.client.CancelTransfer(ctx, o.t.ID()); err != nil {
			s.con.statusf("cancel %s: %v", shown(o.t.Manifest().Name), err)
			continue
		}
		o.ended = true
		n++
	}
	if n > 0 {
		s.h.told()
	}
	return n
}

// giveUpWaiting ends the flow at --timeout if an offer still waits for
// an answer, cancelling every transfer; when every offer has its answer the
// timeout no longer matters.
func (s *sendFlow) giveUpWaiting() error {
	waiting := 0
	for _, o := range s.order {
		if !o.ended && !o.accepted {
			waiting++
		}
	}
	if waiting == 0 {
		return nil
	}
	s.con.end()
	what := "come online"
	if s.online {
		what = "accept"
	}
	s.cancelAll()
	return exitf(exitTimeout, "%s did not %s within %s: the transfer is cancelled", s.to, what, s.timeout)
}

// offerError explains why an offer could not be made.
func (s *sendFlow) offerError(path string, err error) error {
	return sendError("send "+path, s.to, err)
}
