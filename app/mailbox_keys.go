package app

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Defaults of MailOptions.
const (
	// DefaultMailRotate: a new mailbox key every week.
	DefaultMailRotate = 7 * 24 * time.Hour
	// DefaultMailGrace: a peer shown online that we cannot reach for this
	// long gets its messages through the mailbox too.
	DefaultMailGrace = 10 * time.Second
)

// MailOptions tune offline delivery. Zero values take the defaults.
type MailOptions struct {
	// TTL is how long mail we seal stays valid (default
	// ports.DefaultMailTTL, at most ports.MaxMailTTL): a message stored in
	// a mailbox and not acknowledged within TTL of being sent is failed.
	TTL time.Duration
	// Rotate is how often a new mailbox key is made; a key is published
	// valid for two periods (senders may hold it a while) and deleted once
	// every mail that could be sealed to it has expired.
	Rotate time.Duration
	// Grace is how long an online peer may be unreachable before its
	// messages go through the mailbox.
	Grace time.Duration
}

func (o MailOptions) withDefaults() MailOptions {
	if o.TTL <= 0 || o.TTL > ports.MaxMailTTL {
		o.TTL = ports.DefaultMailTTL
	}
	if o.Rotate <= 0 {
		o.Rotate = DefaultMailRotate
	}
	if o.Grace <= 0 {
		o.Grace = DefaultMailGrace
	}
	return o
}

// MailPorts is what offline delivery needs: the registry's mailbox, the
// sealer and where our mailbox keys live. A zero MailPorts (no registry)
// turns offline delivery off.
type MailPorts struct {
	Box    ports.Mailbox
	Sealer ports.MailSealer
	Keys   ports.MailKeyStore
}

func (p MailPorts) enabled() bool { return p.Box != nil && p.Sealer != nil && p.Keys != nil }

// rotateKeys deletes our mailbox keys no mail can use any more, makes a
// new one when the newest is older than Rotate, and returns the current
// one (to publish).
func (d *mailDelivery) rotateKeys(ctx context.Context) (ports.SignedPrekey, error) {
	now := d.clock.Now()
	keys, err := d.ports.Keys.MailKeys(ctx)
	if err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("list mailbox keys: %w", err)
	}
	var newest *ports.MailKey
	for i := range keys {
		k := &keys[i]
		k.Prekey.Name = d.me.Name() // a profile's key store holds only its owner's keys
		if !now.Before(k.DeleteAfter) {
			if err := d.ports.Keys.DeleteMailKey(ctx, k.Prekey.KeyID); err != nil {
				return ports.SignedPrekey{}, fmt.Errorf("delete mailbox key %d: %w", k.Prekey.KeyID, err)
			}
			slog.Info("old mailbox key deleted: mail sealed to it has expired", "key_id", k.Prekey.KeyID)
			continue
		}
		if newest == nil || k.Prekey.Created.After(newest.Prekey.Created) {
			newest = k
		}
	}
	d.keyMu.Lock()
	d.keys = nil
	for _, k := range keys {
		if now.Before(k.DeleteAfter) {
			d.keys = append(d.keys, k)
		}
	}
	d.keyMu.Unlock()
	if newest != nil && now.Sub(newest.Prekey.Created) < d.opts.Rotate && d.ports.Sealer.Suite() == newest.Prekey.Suite {
		return newest.Prekey, nil
	}
	pub, priv, err := d.ports.Sealer.NewKey()
	if err != nil {
		return ports.SignedPrekey{}, err
	}
	var idb [4]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("mailbox key id: %w", err)
	}
	created := now.UTC().Truncate(time.Second)
	k := ports.SignedPrekey{Name: d.me.Name(), KeyID: binary.BigEndian.Uint32(idb[:]), Public: pub, Suite: d.ports.Sealer.Suite(),
		Created: created, Expires: created.Add(2 * d.opts.Rotate)}
	k.Signature = d.me.Sign(signingBytesOf(d.me.PublicKey(), k))
	mk := ports.MailKey{Prekey: k, Private: priv, DeleteAfter: k.Expires.Add(ports.MaxMailTTL)}
	// Saved before it is published: mail sealed to a key we lost could
	// never be opened.
	if err := d.ports.Keys.SaveMailKey(ctx, mk); err != nil {
		return ports.SignedPrekey{}, fmt.Errorf("save mailbox key: %w", err)
	}
	d.keyMu.Lock()
	d.keys = append(d.keys, mk)
	d.keyMu.Unlock()
	slog.Info("new mailbox key", "key_id", k.KeyID, "suite", k.Suite)
	return k, nil
}

// private returns the private half of one of our keys.
func (d *mailDelivery) private(keyID uint32) ([]byte, bool) {
	d.keyMu.Lock()
	defer d.keyMu.Unlock()
	for _, k := range d.keys {
		if k.Prekey.KeyID == keyID {
			return k.Private, true
		}
	}
	return nil, false
}

// signingBytesOf is what the identity key signs to vouch for k.
func signingBytesOf(identity []byte, k ports.SignedPrekey) []byte {
	return domain.PrekeySigningBytes(k.Name, identity, k.KeyID, k.Suite, k.Public, k.Created, k.Expires)
}
