package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

func runMsg(ctx context.Context, args []string, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx msg", "chatx msg [--no-wait] [--timeout DURATION] [flags] NAME TEXT...",
		`Sends one message to NAME without opening the client and exits once NAME's client acknowledged
it (delivered). The words of TEXT are joined with spaces. An offline NAME is waited for, until
--timeout or Ctrl-C; the message stays in the outbox then, and goes out the next time a client
runs on this profile. With --no-wait it exits as soon as the message is stored in the outbox.
Exit status: 0 delivered (or queued, --no-wait), 1 failed, 2 bad usage, 5 --timeout passed,
130 interrupted (Ctrl-C).`, stderr)
	f.registerIdentity(fs)
	f.registerNetwork(fs)
	noWait := fs.Bool("no-wait", false, "exit once the message is queued (stored in the outbox), without waiting for delivery")
	timeout := fs.Duration("timeout", 0, "give up waiting for the acknowledgement after `duration`; 0 waits until Ctrl-C")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		fmt.Fprintln(stderr, "chatx msg: give a NAME and the TEXT")
		fs.Usage()
		return errUsage
	}
	to, err := domain.ParseUsername(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "chatx msg: %v\n", err)
		return errUsage
	}
	text := strings.Join(fs.Args()[1:], " ")
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

	m, err := h.client.Send(ctx, to, text)
	if err != nil {
		if ctx.Err() != nil {
			return exitf(exitInterrupted, "interrupted")
		}
		return sendError("message", to, err)
	}
	if *noWait {
		con.statusf("queued for %s", to)
		return nil
	}
	online := h.isOnline(ctx, to)
	if !online {
		con.statusf("waiting for %s to come online… (Ctrl-C to stop; the message stays queued)", to)
	}
	var deadline <-chan time.Time
	if *timeout > 0 {
		timer := time.NewTimer(*timeout)
		defer timer.Stop()
		deadline = timer.C
	}
	// The events were subscribed before the client started: the
	// acknowledgement is among them even if it came back at once.
	for {
		select {
		case <-ctx.Done():
			return exitf(exitInterrupted, "interrupted: the message to %s stays queued and goes out the next time a client runs on this profile", to)
		case <-deadline:
			return exitf(exitTimeout, "%s did not acknowledge the message within %s; it stays queued and goes out the next time a client runs on this profile", to, *timeout)
		case <-h.exited:
			return h.stopped()
		case ev, ok := <-h.events:
			if !ok {
				return errors.New("the client stopped sending events")
			}
			switch e := ev.(type) {
			case ports.PresenceEvent:
				if e.Peer.Name().Equal(to) && e.Peer.Online != online {
					online = e.Peer.Online
					if !online {
						con.statusf("waiting for %s to come online… (Ctrl-C to stop; the message stays queued)", to)
					}
				}
			case ports.MessageStateEvent:
				if e.ID != m.ID() {
					continue
				}
				switch e.State {
				case domain.MessageDelivered, domain.MessageRead:
					con.statusf("delivered to %s", to)
					return nil
				case domain.MessageFailed:
					if e.Reason != "" {
						return exitf(exitFailed, "the message to %s failed: %s", to, e.Reason)
					}
					return exitf(exitFailed, "the message to %s failed", to)
				case domain.MessageStored:
					con.statusf("stored in %s's mailbox at the registry; waiting for %s to fetch it… (Ctrl-C to stop)", to, to)
				default:
					if e.Reason != "" {
						con.statusf("%s", e.Reason)
					}
				}
			}
		}
	}
}
