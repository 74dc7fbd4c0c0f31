package registry

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.Mailbox = (*Client)(nil)

// maxFetchAnswer bounds a fetch answer the client reads: MaxFetch mails of
// MaxMailSize in base64 would be 5.6 MB; the server stops at its
// MaxFetchBytes (1 MiB by default), so 8 MiB leaves room for any config.
const maxFetchAnswer = 8 << 20

// PublishPrekey publishes k as our current mailbox key.
func (c *Client) PublishPrekey(ctx context.Context, k ports.SignedPrekey) error {
	name, token, err := c.sessionAuth()
	if err != nil {
		return fmt.Errorf("publish mailbox key: %w", ports.ErrSessionInvalid)
	}
	if err := c.do(ctx, http.MethodPut, userPath(name)+"/prekey", token, toPrekeyJSON(k), nil); err != nil {
		return fmt.Errorf("publish mailbox key: %w", err)
	}
	return nil
}

// Prekey returns name's current mailbox key as the registry has it.
func (c *Client) Prekey(ctx context.Context, name domain.Username) (ports.SignedPrekey, error) {
	var pj prekeyJSON
	if err := c.do(ctx, http.MethodGet, userPath(name)+"/prekey", "", nil, &pj); err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: %w", name, err)
	}
	got, err := domain.ParseUsername(pj.Name)
	if err != nil || !got.Equal(name) {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: registry answered for %.40q", name, pj.Name)
	}
	k, err := pj.prekey(name)
	if err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key of %s: %w", name, err)
	}
	return k, nil
}

// Deposit parks a sealed blob for to.
func (c *Client) Deposit(ctx context.Context, to domain.Username, blob []byte, ttl time.Duration) (ports.MailReceipt, error) {
	if len(blob) == 0 || len(blob) > ports.MaxMailSize {
		return ports.MailReceipt{}, fmt.Errorf("deposit for %s: blob of %d bytes (1 to %d): %w", to, len(blob), ports.MaxMailSize, domain.ErrTooLarge)
	}
	body := depositRequest{To: to.String(), Blob: base64.StdEncoding.EncodeToString(blob), TTLSeconds: int64(ttl / time.Second)}
	var resp depositResponse
	if err := c.sessionCall(ctx, http.MethodPost, "/v1/mailbox", body, &resp); err != nil {
		return ports.MailReceipt{}, fmt.Errorf("deposit for %s: %w", to, err)
	}
	id, err := parseMailID(resp.ID)
	if err != nil {
		return ports.MailReceipt{}, fmt.Errorf("deposit for %s: registry answered a bad %w", to, err)
	}
	return ports.MailReceipt{ID: id, Expires: resp.Expires}, nil
}

// mailboxProof signs a fresh challenge for action as our session's identity.
func (c *Client) mailboxProof(ctx context.Context, action domain.RegistryAction) (mailboxProofRequest, domain.Username, error) {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return mailboxProofRequest{}, domain.Username{}, ports.ErrNotRegistered
	}
	ch, err := c.challenge(ctx)
	if err != nil {
		return mailboxProofRequest{}, domain.Username{}, err
	}
	p := domain.RegistryProof{Action: action, Name: s.me.Name(), Key: s.me.PublicKey(), Challenge: ch}
	return mailboxProofRequest{
		Key:       base64.StdEncoding.EncodeToString(p.Key),
		Challenge: base64.StdEncoding.EncodeToString(ch),
		Signature: base64.StdEncoding.EncodeToString(p.Sign(s.me)),
	}, s.me.Name(), nil
}

// Fetch returns our oldest parked mail.
func (c *Client) Fetch(ctx context.Context) (ports.MailBatch, error) {
	req, name, err := c.mailboxProof(ctx, domain.ActionMailboxFetch)
	if err != nil {
		return ports.MailBatch{}, fmt.Errorf("fetch mail: %w", err)
	}
	req.Limit = ports.MaxFetch
	var resp fetchResponse
	if err := c.doLimited(ctx, http.MethodPost, userPath(name)+"/mailbox/fetch", "", req, &resp, maxFetchAnswer); err != nil {
		return ports.MailBatch{}, fmt.Errorf("fetch mail: %w", err)
	}
	if len(resp.Mail) > ports.MaxFetch {
		return ports.MailBatch{}, fmt.Errorf("fetch mail: registry sent %d mails (at most %d): %w", len(resp.Mail), ports.MaxFetch, domain.ErrTooLarge)
	}
	out := ports.MailBatch{More: resp.More, Mail: make([]ports.Mail, 0, len(resp.Mail))}
	for _, mj := range resp.Mail {
		id, err := parseMailID(mj.ID)
		if err != nil {
			return ports.MailBatch{}, fmt.Errorf("fetch mail: registry sent a bad %w", err)
		}
		blob, err := base64.StdEncoding.DecodeString(mj.Blob)
		if err != nil || len(blob) > ports.MaxMailSize {
			return ports.MailBatch{}, fmt.Errorf("fetch mail: registry sent a bad blob")
		}
		out.Mail = append(out.Mail, ports.Mail{ID: id, To: name, Blob: blob, Deposited: mj.Deposited, Expires: mj.Expires})
	}
	return out, nil
}

// Delete removes handled mail.
func (c *Client) Delete(ctx context.Context, ids []ports.MailID) error {
	if len(ids) == 0 {
		return nil
	}
	req, name, err := c.mailboxProof(ctx, domain.ActionMailboxDelete)
	if err != nil {
		return fmt.Errorf("delete mail: %w", err)
	}
	for _, id := range ids {
		req.IDs = append(req.IDs, hex.EncodeToString(id[:]))
	}
	if err := c.do(ctx, http.MethodPost, userPath(name)+"/mailbox/delete", "", req, nil); err != nil {
		return fmt.Errorf("delete mail: %w", err)
	}
	return nil
}

// MailWaiting signals when the registry says mail arrived for us and when
// our session stream (re)connects, until ctx is done.
func (c *Client) MailWaiting(ctx context.Context) (<-chan struct{}, error) {
	ch := make(chan struct{}, 1)
	ch <- struct{}{} // look once at the start
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(ch)
		return ch, nil
	}
	c.mailSubs[ch] = struct{}{}
	c.untilDoneLocked(ctx, func() {
		delete(c.mailSubs, ch)
		close(ch)
	})
	return ch, nil
}

// mailWaiting signals every MailWaiting subscriber without blocking.
func (c *Client) mailWaiting() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ch := range c.mailSubs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
