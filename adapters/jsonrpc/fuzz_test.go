package jsonrpc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/chatx/chatx/adapters/jsonrpc"
)

// FuzzServe feeds arbitrary input to a server: it must end at EOF without
// error and write only well-formed JSON-RPC lines.
func FuzzServe(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","method":"whoami","id":1}` + "\n"))
	f.Add([]byte(`[{"jsonrpc":"2.0","method":"send","params":{"to":"bob","text":"hi"},"id":"a"},{"jsonrpc":"2.0","method":"typing","params":{"to":"bob"}}]`))
	f.Add([]byte("not json\n\n{\"jsonrpc\":\"2.0\",\"method\":7,\"id\":{}}\r\n"))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"history","params":{"with":"bob","limit":1e309},"id":1e400}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out syncBuffer
		srv := jsonrpc.NewServer(newFake(), bytes.NewReader(in), &out, jsonrpc.Options{MaxLineBytes: 256}, slog.New(slog.DiscardHandler))
		if err := srv.Serve(context.Background()); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		sc := bufio.NewScanner(bytes.NewReader([]byte(out.String())))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var v any
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.UseNumber() // ids are echoed as sent, even 1e400
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("output line %q: %v", sc.Bytes(), err)
			}
			switch x := v.(type) {
			case map[string]any:
				if x["jsonrpc"] != "2.0" {
					t.Fatalf("output line without jsonrpc: %q", sc.Bytes())
				}
			case []any:
			default:
				t.Fatalf("output line %q", sc.Bytes())
			}
		}
	})
}
