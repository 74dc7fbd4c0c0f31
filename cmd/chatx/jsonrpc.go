package main

import (
	"context"
	"errors"
	"io"

	"github.com/chatx/chatx"
	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/adapters/storage"
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
	unlock, err := storage.LockProfile(storage.ProfileDir(f.profile))
	if err != nil {
		return err
	}
	defer unlock()
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
	clientDone := make(chan error, 1)
	var srv *jsonrpc.Server
	startClient := func() {
		go func() {
			// A client that stops by itself (the name is taken, the
			// profile's store failed) tells the script and ends the server.
			err := client.Run(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				err = nameTakenAdvice(err, &f, me)
				srv.Fail(err)
			}
			clientDone <- err
		}()
	}
	srv = jsonrpc.NewServer(client, stdin, stdout, jsonrpc.Options{Subscribed: startClient}, logger)
	rpcErr := srv.Serve(ctx) // returns at EOF on stdin, when ctx ends or the client failed
	cancel()
	clientErr := <-clientDone
	if clientErr != nil && !errors.Is(clientErr, context.Canceled) {
		return clientErr
	}
	if rpcErr != nil && !errors.Is(rpcErr, context.Canceled) {
		return rpcErr
	}
	return nil
}
