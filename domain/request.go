package domain

import (
	"errors"
	"fmt"
	"time"
)

// A request is what a stranger (a peer that is not a contact) sent: chats
// and file offers held in a quarantine with hard caps until the user
// accepts, declines or blocks the sender.

// HeldKind is what a held item is.
type HeldKind uint8

// Held kinds. Their String() is stored; never rename.
const (
	HeldChat  HeldKind = 1 // a chat message
	HeldOffer HeldKind = 2 // a file or folder offer
)

func (k HeldKind) String() string {
	switch k {
	case HeldChat:
		return "chat"
	case HeldOffer:
		return "offer"
	}
	return fmt.Sprintf("held kind %d", k)
}

// ParseHeldKind is the inverse of HeldKind.String.
func ParseHeldKind(s string) (HeldKind, error) {
	switch s {
	case "chat":
		return HeldChat, nil
	case "offer":
		return HeldOffer, nil
	}
	return 0, fmt.Errorf("unknown held kind %q", s)
}

// heldOverhead is what every held item costs beyond its text, so that
// empty-looking items cannot be held for free.
const heldOverhead = 64

// HeldItem is one thing a stranger sent, held in the quarantine.
type HeldItem struct {
	From       Identity
	Kind       HeldKind
	Message    Message // HeldChat: the incoming message (its ID deduplicates)
	TransferID TransferID
	Manifest   Manifest // HeldOffer: the offer as received
	ReceivedAt time.Time
}

// NewHeldChat holds an incoming message m from a stranger.
func NewHeldChat(from Identity, m Message, now time.Time) HeldItem {
	return HeldItem{From: from, Kind: HeldChat, Message: m, ReceivedAt: now}
}

// NewHeldOffer holds a stranger's file offer.
func NewHeldOffer(from Identity, id TransferID, m Manifest, now time.Time) HeldItem {
	return HeldItem{From: from, Kind: HeldOffer, TransferID: id, Manifest: m, ReceivedAt: now}
}

// Size is what the item counts against the quarantine's byte caps: its
// text (message body, or offer name and paths, plus each file's size and
// hash fields) and a fixed overhead.
func (h HeldItem) Size() int64 {
	n := int64(heldOverhead)
	switch h.Kind {
	case HeldChat:
		n += int64(len(h.Message.Body()))
	case HeldOffer:
		n += int64(len(h.Manifest.Name))
		for _, f := range h.Manifest.Files {
			n += int64(len(f.Path)) + 40
		}
	}
	return n
}

// Key is the item's identity within its sender's requests: a message or a
// transfer ID (a repeat is held once).
func (h HeldItem) Key() [16]byte {
	if h.Kind == HeldOffer {
		return h.TransferID
	}
	return h.Message.ID()
}

// QuarantineLimits are the hard caps of the quarantine.
type QuarantineLimits struct {
	PerPeerItems int   // items held per stranger
	PerPeerBytes int64 // bytes (HeldItem.Size) held per stranger
	TotalBytes   int64 // bytes held for every stranger together
	MaxPeers     int   // strangers with held items
}

// DefaultQuarantineLimits: 20 items and 256 KiB per stranger, 10 MiB and
// 200 strangers in all.
var DefaultQuarantineLimits = QuarantineLimits{PerPeerItems: 20, PerPeerBytes: 256 << 10, TotalBytes: 10 << 20, MaxPeers: 200}

// OrDefault fills zero fields from DefaultQuarantineLimits.
func (l QuarantineLimits) OrDefault() QuarantineLimits {
	d := DefaultQuarantineLimits
	if l.PerPeerItems <= 0 {
		l.PerPeerItems = d.PerPeerItems
	}
	if l.PerPeerBytes <= 0 {
		l.PerPeerBytes = d.PerPeerBytes
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = d.TotalBytes
	}
	if l.MaxPeers <= 0 {
		l.MaxPeers = d.MaxPeers
	}
	return l
}

// ErrQuarantineFull: holding an item would pass a cap of the quarantine.
var ErrQuarantineFull = errors.New("message requests are full")

// QuarantineUsage is what the quarantine holds: for one stranger, and in all.
type QuarantineUsage struct {
	PeerItems  int
	PeerBytes  int64
	TotalBytes int64
	Peers      int
}

// Admit checks that item fits beside what u counts (u.PeerItems and
// u.PeerBytes those of item's sender, zero for a sender with nothing held).
// It returns an error wrapping ErrQuarantineFull that names the cap.
func (l QuarantineLimits) Admit(u QuarantineUsage, item HeldItem) error {
	size := item.Size()
	switch {
	case u.PeerItems == 0 && u.Peers >= l.MaxPeers:
		return fmt.Errorf("%w: %d strangers have requests waiting", ErrQuarantineFull, u.Peers)
	case u.PeerItems+1 > l.PerPeerItems:
		return fmt.Errorf("%w: %d items from %s", ErrQuarantineFull, u.PeerItems, item.From.Name())
	case u.PeerBytes+size > l.PerPeerBytes:
		return fmt.Errorf("%w: %d bytes from %s", ErrQuarantineFull, u.PeerBytes, item.From.Name())
	case u.TotalBytes+size > l.TotalBytes:
		return fmt.Errorf("%w: %d bytes in all", ErrQuarantineFull, u.TotalBytes)
	}
	return nil
}

// Request summarises what one stranger has waiting.
type Request struct {
	From   Identity
	Items  int
	Bytes  int64
	First  time.Time // when the first held item arrived
	Last   time.Time
	Offers int // how many of Items are file offers
}
