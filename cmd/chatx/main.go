// Command chatx is ChatX: a secure peer-to-peer messenger and file-transfer
// tool for the terminal. Run with no subcommand it opens the terminal client;
// `chatx registry` runs the registry server; `chatx jsonrpc` drives the same
// client over JSON-RPC on stdin/stdout; `chatx id` prints the profile's
// identity; `chatx demo` starts a local registry and a second peer to try it
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
// success, 1 on a runtime error, 2 on bad usage.
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
	default:
		fmt.Fprintln(stderr, "chatx:", err)
		return 1
	}
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
