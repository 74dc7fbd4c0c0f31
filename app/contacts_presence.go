package app

import (
	"context"
	"log/slog"
)

// pollContacts looks up every contact in the directory each Retry.Max, so
// that contacts' presence is known even from a registry that lists nobody
// (`chatx registry --list-users=false`: its presence stream carries no
// one). A lookup by exact name is what such a registry still answers. With
// a listing registry the lookups agree with the stream and change nothing.
func (c *Client) pollContacts(ctx context.Context) {
	every := c.opts.Retry.orDefault().Max
	for {
		contacts, err := c.contacts.Contacts(ctx)
		if err != nil && ctx.Err() == nil {
			slog.Warn("list contacts", "err", err)
		}
		for _, ct := range contacts {
			if ctx.Err() != nil {
				return
			}
			p, err := c.verify.dir.Lookup(ctx, ct.Identity.Name())
			if err != nil {
				continue // unknown or unreachable now: the next round asks again
			}
			c.discover.see(ctx, p, c.peerOnline)
		}
		if !sleep(ctx, jitter(every)) {
			return
		}
	}
}
