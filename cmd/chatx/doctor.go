package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// runDoctor starts the client headless, waits for the registry and the NAT
// measurement, tries to reach each named peer, and prints what it found:
// the NAT's behaviour, our candidates, how each peer was reached (or why
// not) and the connection attempts. Exit status 1 when a named peer could
// not be reached.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx doctor", "chatx doctor [--profile DIR] [--registry URL] [--wait DURATION] [NAME…]",
		"Tells how this machine can be reached: the NAT's mapping behaviour, the candidates, and, for each NAME,\nhow that peer is reached (LAN, direct, relayed; TCP or QUIC) or why it cannot be. Close the terminal\nclient of the same profile first (or use another --profile), or press F2 in it.", stderr)
	f.register(fs)
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the registry and the NAT measurement, and for each peer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.resolve(); err != nil {
		return err
	}
	names := make([]domain.Username, 0, fs.NArg())
	for _, a := range fs.Args() {
		u, err := domain.ParseUsername(a)
		if err != nil {
			fmt.Fprintf(stderr, "chatx doctor: %q: %v\n", a, err)
			return errUsage
		}
		names = append(names, u)
	}
	logger, closeLog, err := openLog(f.logFile, io.Discard, f.verbose)
	if err != nil {
		return err
	}
	defer closeLog()
	// Like every client: one process per profile, or the registry session
	// would flip between the two.
	unlock, err := storage.LockProfile(storage.ProfileDir(f.profile))
	if err != nil {
		return err
	}
	defer unlock()
	me, err := identity(ctx, &f, nil)
	if err != nil {
		return err
	}
	client, cleanup, err := chatx.InitClient(clientConfig(&f, app.Options{}), me, logger)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := client.Subscribe(ctx)
	errc := runClient(ctx, client)

	fmt.Fprintf(stdout, "ChatX doctor — %s (%s)\n", me.Name(), me.Fingerprint().Short())
	status, stopped := waitRegistry(ctx, events, errc, *wait)
	fmt.Fprintf(stdout, "%-11s %s: %s\n", "registry", f.registry, status)
	if stopped != nil {
		return stopped
	}
	rep := waitNAT(ctx, client, *wait)
	fmt.Fprintf(stdout, "%-11s %s\n", "NAT", rep.NAT.Describe())
	for i, c := range rep.Candidates {
		label := ""
		if i == 0 {
			label = "candidates"
		}
		fmt.Fprintf(stdout, "%-11s %s\n", label, c)
	}
	unreachable := 0
	for _, name := range names {
		path, err := reach(ctx, client, name, *wait)
		if err != nil {
			unreachable++
			fmt.Fprintf(stdout, "%-11s cannot reach: %v\n", name, err)
			continue
		}
		fmt.Fprintf(stdout, "%-11s reached: %s %s\n", name, path, path.Remote)
	}
	for i, a := range client.Reachability(ctx).Attempts {
		label := ""
		if i == 0 {
			label = "attempts"
		}
		fmt.Fprintf(stdout, "%-11s %s\n", label, describeAttempt(a))
	}
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if unreachable > 0 {
		return fmt.Errorf("%d of %d peers could not be reached", unreachable, len(names))
	}
	return nil
}

// waitRegistry waits for the directory to say it is connected. When the
// client stops instead (the name is taken, say), it returns why.
func waitRegistry(ctx context.Context, events <-chan ports.Event, errc <-chan error, wait time.Duration) (string, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	last := "no answer yet"
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return last, nil
			}
			if s, ok := ev.(ports.DirectoryStatusEvent); ok {
				if s.Connected {
					return "connected", nil
				}
				last = "unreachable: " + s.Err
			}
		case err := <-errc:
			if err == nil {
				err = errors.New("the client stopped")
			}
			return "failed", err
		case <-t.C:
			return last, nil
		case <-ctx.Done():
			return last, nil
		}
	}
}

// waitNAT waits until the transport has measured the NAT, or wait passes.
func waitNAT(ctx context.Context, c *app.Client, wait time.Duration) ports.ReachabilityReport {
	deadline := time.Now().Add(wait)
	for {
		rep := c.Reachability(ctx)
		if rep.NAT != domain.NATUnknown || time.Now().After(deadline) || ctx.Err() != nil {
			return rep
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reach makes the link to name come up (a typing notice is harmless) and
// returns its path.
func reach(ctx context.Context, c *app.Client, name domain.Username, wait time.Duration) (domain.Path, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := c.Typing(ctx, name); err != nil {
		return domain.Path{}, err
	}
	for {
		views, err := c.Peers(ctx)
		if err != nil {
			return domain.Path{}, err
		}
		for _, v := range views {
			if v.Peer.Name().Equal(name) && !v.Path.IsZero() {
				return v.Path, nil
			}
		}
		select {
		case <-ctx.Done():
			return domain.Path{}, errors.New("the link did not come up")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func describeAttempt(a ports.Attempt) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", a.At.Local().Format("15:04:05.000"), a.Peer)
	if !a.Path.IsZero() {
		fmt.Fprintf(&b, " %s %s", a.Path, a.Path.Remote)
	}
	if a.Err != nil {
		fmt.Fprintf(&b, " failed: %v", a.Err)
	} else {
		b.WriteString(" ok")
	}
	if a.Detail != "" {
		b.WriteString(" — " + a.Detail)
	}
	return b.String()
}
