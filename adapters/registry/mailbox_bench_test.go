package registry_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/registry"
	"github.com/chatx/chatx/app"
	"github.com/chatx/chatx/ports"
)

func benchMailServer(b *testing.B) *mailServer {
	return startMailServer(b, b.TempDir(), "", app.MailboxOptions{Quota: ports.MailQuota{Count: 1 << 30, Bytes: 1 << 40}},
		registry.MailboxConfig{DepositRate: registry.Rate{PerSecond: 1e6, Burst: 1e6}})
}

// BenchmarkMailboxDeposit measures POST /v1/mailbox over HTTPS: a sealed
// 1 KiB letter, each deposit fsynced to the mailbox log before it is
// answered, from 8 goroutines of one sending session.
func BenchmarkMailboxDeposit(b *testing.B) {
	ctx := context.Background()
	ms := benchMailServer(b)
	alice, bob := newMailUser(b, ctx, ms.url, "alice"), newMailUser(b, ctx, ms.url, "bob")
	blob := alice.sealTo(b, bob, string(make([]byte, 1024)))
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	var next sync.Mutex
	left := b.N
	for range 8 {
		wg.Go(func() {
			for {
				next.Lock()
				if left == 0 {
					next.Unlock()
					return
				}
				left--
				next.Unlock()
				if _, err := alice.c.Deposit(ctx, bob.me.Name(), blob, time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	reportRate(b, "deposits/s", start, cpu0)
}

// BenchmarkMailboxFetch measures draining a mailbox over HTTPS the way a
// client does: fetch (a fresh challenge and proof, up to 64 mails) and
// delete what was fetched (another proof, fsynced), until empty; per mail.
func BenchmarkMailboxFetch(b *testing.B) {
	ctx := context.Background()
	ms := benchMailServer(b)
	alice, bob := newMailUser(b, ctx, ms.url, "alice"), newMailUser(b, ctx, ms.url, "bob")
	blob := alice.sealTo(b, bob, string(make([]byte, 1024)))
	for range b.N {
		if _, err := alice.c.Deposit(ctx, bob.me.Name(), blob, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	got := 0
	for got < b.N {
		batch, err := bob.c.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]ports.MailID, len(batch.Mail))
		for i, m := range batch.Mail {
			ids[i] = m.ID
		}
		if err := bob.c.Delete(ctx, ids); err != nil {
			b.Fatal(err)
		}
		got += len(ids)
	}
	reportRate(b, "mails/s", start, cpu0)
}
