package main

import (
	"context"
	"errors"
	"io"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/app"
)

func runJSONRPC(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var f clientFlags
	fs := newFlagSet("chatx jsonrpc", "chatx jsonrpc [--name NAME] [--profile DIR] [--registry URL] [--downloads DIR] [--auto-accept]",
		"Runs the client headless, driven by newline-delimited JSON-RPC 2.0 on stdin/stdout (docs/jsonrpc.md).\nLogs go to stderr. The first run needs --name.", stderr)
	f.register(fs)
	autoAccept := fs.Bool("auto-accept", false, "accept every incoming file offer that fits the free space and --max-incoming; decline the others")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.resolve(); err != nil {
		return err
	}
	logger, closeLog, err := openLog(f.logFile, stderr, f.verbose)
	if err != nil {
		return err
	}
	defer closeLog()
	me, err := identity(ctx, &f, nil)
	if err != nil {
		return err
	}
	client, cleanup, err := chatx.InitClient(clientConfig(&f, app.Options{AutoAccept: app.AutoAccept(*autoAccept)}), me, logger)
	if err != nil {
		return err
	}
	defer cleanup()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recordBound(ctx, client, &f, logger)
	errc := runClient(ctx, client)
	srv := jsonrpc.NewServer(client, stdin, stdout, jsonrpc.Options{}, logger)
	rpcErr := srv.Serve(ctx) // returns at EOF on stdin or when ctx ends
	cancel()
	clientErr := <-errc
	if rpcErr != nil && !errors.Is(rpcErr, context.Canceled) {
		return rpcErr
	}
	if clientErr != nil && !errors.Is(clientErr, context.Canceled) {
		return nameTakenAdvice(clientErr, &f, me)
	}
	return nil
}
