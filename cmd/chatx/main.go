// Command chatx is ChatX: a secure peer-to-peer messenger and file-transfer
// tool for the terminal. Run with no subcommand it opens the terminal client;
// `chatx registry` runs the registry server; `chatx jsonrpc` drives the same
// client over JSON-RPC on stdin/stdout; `chatx id` prints the profile's
// identity; `chatx send`, `chatx receive` and `chatx msg` are one-shot flows
// without the terminal UI; `chatx demo` starts a local registry and a second peer to try it
// on one machine.
//
// main parses flags, reads the environment, picks an injector from the root
// package and runs what it built. Nothing else lives here.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `ChatX — secure peer-to-peer chat and file transfer for the terminal.

Usage:
  chatx [flags]              open the terminal client (first run asks for a name)
  chatx registry [flags]     run the registry server (HTTPS, default :5000)
  chatx jsonrpc [flags]      the client over newline-delimited JSON-RPC 2.0 on stdin/stdout
  chatx send NAME PATH...    send files or folders to NAME and exit once they arrived (no client UI)
  chatx receive [flags]      wait for files (--from NAME, --yes, --to DIR) and exit once one arrived
  chatx msg NAME TEXT        send one message and exit once NAME's client acknowledged it
  chatx id [flags]           print this profile's name, peer ID and fingerprint
  chatx demo [flags]         try it on one machine: a local registry, a second peer, and the client
  chatx doctor [flags] [NAME…]  how this machine is reached: NAT, candidates, the path to each NAME
  chatx version              print the version

Run 'chatx <command> -help' for the flags of a command.
Environment: CHATX_PROFILE and CHATX_REGISTRY mirror --profile and --registry.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code: 0 on
// success, 1 on a runtime error, 2 on bad usage; the one-shot flows add
// their own (see the exit* constants).
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "":
		err = runTUI(ctx, args, stderr)
	case "registry":
		err = runRegistry(ctx, args, stdout, stderr)
	case "jsonrpc":
		err = runJSONRPC(ctx, args, stdin, stdout, stderr)
	case "send":
		err = runSend(ctx, args, stderr)
	case "receive":
		err = runReceive(ctx, args, stdin, stdout, stderr)
	case "msg":
		err = runMsg(ctx, args, stderr)
	case "id":
		err = runID(ctx, args, stdout, stderr)
	case "demo":
		err = runDemo(ctx, args, stderr)
	case "doctor":
		err = runDoctor(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "chatx", version)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "chatx: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errHelp):
		return 0
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		fmt.Fprintln(stderr, "chatx:", err)
		return ee.code
	default:
		fmt.Fprintln(stderr, "chatx:", err)
		return 1
	}
}

// Exit statuses of the one-shot flows (send, receive, msg), for scripts.
const (
	exitFailed      = 1   // it did not work: a transfer failed, the peer is unknown, the client could not start
	exitDeclined    = 3   // the receiver declined the offer
	exitCancelled   = 4   // the other side cancelled the transfer
	exitTimeout     = 5   // --timeout passed before the peer answered (or acknowledged)
	exitInterrupted = 130 // Ctrl-C (SIGINT) or SIGTERM: what was under way was cancelled at both ends
)

// exitError is a failure with its own exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitf makes an exitError with a formatted message.
func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help shown")
)

// parseFlags parses args, mapping -help to errHelp and bad flags to errUsage.
func parseFlags(fs interface{ Parse([]string) error }, args []string) error {
	if err := fs.Parse(args); err != nil {
		if strings.Contains(err.Error(), "help requested") {
			return errHelp
		}
		return errUsage
	}
	return nil
}
