package bench_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/jsonrpc"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// rpcPair is msgPair with alice driven through a JSON-RPC server on pipes
// (the server `chatx jsonrpc` runs, minus the process boundary), and bob's
// messages from alice collected in arrival order.
type rpcPair struct {
	*msgPair
	in        io.WriteCloser
	responses chan rpcResponse
	received  chan string // texts of bob's messages from alice, in order
}

type rpcResponse struct {
	ID     int64           `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func newRPCPair(tb testing.TB) *rpcPair {
	tb.Helper()
	p := &rpcPair{msgPair: newMsgPair(tb), responses: make(chan rpcResponse, 1<<16), received: make(chan string, 1<<17)}
	ctx, cancel := context.WithCancel(context.Background())
	bobEvents := p.bob.Subscribe(ctx)
	go func() {
		defer close(p.received)
		alice := p.alice.Whoami().Name()
		for ev := range bobEvents {
			if me, ok := ev.(ports.MessageEvent); ok && me.Message.From().Equal(alice) && me.Message.Direction() == domain.Incoming {
				p.received <- me.Message.Body()
			}
		}
	}()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	srv := jsonrpc.NewServer(p.alice, inR, outW, jsonrpc.Options{}, slog.New(slog.DiscardHandler))
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ctx)
		outW.Close()
	}()
	go func() {
		defer close(p.responses)
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r rpcResponse
			if !strings.Contains(sc.Text(), `"method"`) && json.Unmarshal(sc.Bytes(), &r) == nil {
				p.responses <- r
			}
		}
	}()
	p.in = inW
	stop := p.stop
	p.stop = func() {
		inW.Close()
		cancel()
		<-served
		stop()
	}
	return p
}

// awaitResponse returns the next response; it fails on an error response
// or one for another id than want (answered out of order).
func (p *rpcPair) awaitResponse(tb testing.TB, want int64) {
	tb.Helper()
	select {
	case r, ok := <-p.responses:
		switch {
		case !ok:
			tb.Fatal("the server stopped")
		case r.Error != nil:
			tb.Fatalf("send %d: error %d %s", r.ID, r.Error.Code, r.Error.Message)
		case r.ID != want:
			tb.Fatalf("response for id %d, want %d: answered out of order", r.ID, want)
		}
	case <-time.After(5 * time.Minute):
		tb.Fatalf("no response to send %d", want)
	}
}

// awaitReceived waits until bob received texts[from:], in that order.
func (p *rpcPair) awaitReceived(tb testing.TB, texts []string) {
	tb.Helper()
	deadline := time.After(5 * time.Minute)
	for i := 0; i < len(texts); {
		select {
		case got, ok := <-p.received:
			if !ok {
				tb.Fatal("bob's event stream ended")
			}
			if got == "hello" { // newMsgPair's first message
				continue
			}
			if got != texts[i] {
				tb.Fatalf("bob's message %d is %q, want %q: out of order", i, got, texts[i])
			}
			i++
		case <-deadline:
			tb.Fatalf("bob received %d of %d messages", i, len(texts))
		}
	}
}

func sendLine(id int64, text string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"send","params":{"to":"bob","text":%q}}`+"\n", id, text)
}

// A script writing thousands of sends at once over JSON-RPC, between two
// whole clients (SQLite, TCP link): every send is answered in the order
// written and bob receives them in that order.
func TestJSONRPCPipelinedSendsArriveInOrder(t *testing.T) {
	p := newRPCPair(t)
	defer p.stop()
	const n = 2000
	texts := make([]string, n)
	var b strings.Builder
	for i := range n {
		texts[i] = fmt.Sprint("m", i)
		b.WriteString(sendLine(int64(i), texts[i]))
	}
	go func() { _, _ = io.WriteString(p.in, b.String()) }()
	for i := range n {
		p.awaitResponse(t, int64(i))
	}
	p.awaitReceived(t, texts)
}

// BenchmarkJSONRPCSend measures sends/s through the JSON-RPC server of a
// whole client with persistence on: "pipelined" writes CHATX_BENCH_MSGS
// sends at once as fast as the pipe takes them, "one-at-a-time" writes
// each after the previous answer. answered/s counts to the last response
// (each response: the message is durable in alice's outbox);
// received/s to bob's last message, every one checked to arrive in order.
func BenchmarkJSONRPCSend(b *testing.B) {
	for _, mode := range []string{"pipelined", "one-at-a-time"} {
		b.Run(mode, func(b *testing.B) {
			n := envInt("CHATX_BENCH_MSGS", 20_000)
			if mode == "one-at-a-time" {
				n = max(n/10, 1)
			}
			p := newRPCPair(b)
			defer p.stop()
			var answered, received time.Duration
			total := 0
			next := int64(0)
			cpu0 := cpuTime()
			b.ResetTimer()
			for round := range b.N {
				texts := make([]string, n)
				var lines strings.Builder
				first := next
				for i := range n {
					texts[i] = fmt.Sprintf("r%d m%d benchmark message of a realistic length", round, i)
					lines.WriteString(sendLine(next, texts[i]))
					next++
				}
				started := time.Now()
				if mode == "pipelined" {
					go func() { _, _ = io.WriteString(p.in, lines.String()) }()
					for id := first; id < next; id++ {
						p.awaitResponse(b, id)
					}
				} else {
					for i, id := 0, first; id < next; i, id = i+1, id+1 {
						if _, err := io.WriteString(p.in, sendLine(id, texts[i])); err != nil {
							b.Fatal(err)
						}
						p.awaitResponse(b, id)
					}
				}
				answered += time.Since(started)
				p.awaitReceived(b, texts)
				received += time.Since(started)
				total += n
			}
			b.StopTimer()
			reportCPU(b, cpuTime()-cpu0, total)
			b.ReportMetric(float64(total)/answered.Seconds(), "answered/s")
			b.ReportMetric(float64(total)/received.Seconds(), "received/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
