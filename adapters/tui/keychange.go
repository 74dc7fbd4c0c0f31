package tui

import (
	"context"
	"fmt"
	"slices"

	"github.com/rivo/tview"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

const maxPendingKeyChanges = 32

// keyChange is a peer whose key changed, waiting for the user's decision.
type keyChange struct {
	name     domain.Username
	old, new *domain.Fingerprint // nil when the client did not say
}

// keyChangeDialog is the blocking warning about a changed key: until the user
// accepts the new key or keeps the peer blocked, no other key does anything.
type keyChangeDialog struct {
	view    *tview.TextView
	current keyChange
	pending []keyChange
}

func newKeyChangeDialog() *keyChangeDialog {
	v := dialogView(" ⚠ KEY CHANGED ")
	return &keyChangeDialog{view: v}
}

func (k *keyChangeDialog) hasPending() bool { return len(k.pending) > 0 }

func (k *keyChangeDialog) add(kc keyChange) {
	if k.current.name.Equal(kc.name) && !k.current.name.IsZero() {
		return
	}
	for i := range k.pending {
		if k.pending[i].name.Equal(kc.name) {
			if kc.new != nil {
				k.pending[i] = kc
			}
			return
		}
	}
	if len(k.pending) < maxPendingKeyChanges {
		k.pending = append(k.pending, kc)
	}
}

// pendingFromList queues the warning for a peer the list says has a key
// change waiting (for example from an earlier run).
func (k *keyChangeDialog) pendingFromList(pv ports.PeerView) {
	k.add(keyChange{name: pv.Peer.Name()})
}

// queueKeyChange queues the warning for name and shows it when nothing else
// is in front.
func (u *UI) queueKeyChange(name domain.Username, old, new domain.Fingerprint) {
	u.keyChange.add(keyChange{name: name, old: &old, new: &new})
	u.peers.markKeyChanged(u, name, true)
	u.nextDialog()
}

func (u *UI) showKeyChange() {
	k := u.keyChange
	if len(k.pending) == 0 {
		return
	}
	k.current = k.pending[0]
	k.pending = k.pending[1:]
	k.view.SetText(keyChangeText(k.current))
	u.showOverlay(pageKeyChange, centered(k.view, 72, 17), k.view)
}

func keyChangeText(kc keyChange) string {
	name := escapeLine(kc.name.String())
	s := fmt.Sprintf("[red::b]The key of %s has changed.[-::-]\n\n", name)
	if kc.old != nil && kc.new != nil {
		s += fmt.Sprintf("Old fingerprint: %s\nNew fingerprint: %s\n\n", kc.old.String()[:39], kc.new.String()[:39])
	}
	s += fmt.Sprintf("Either %s reinstalled ChatX, or someone else is using the name. "+
		"Sending to %s is blocked. Compare the safety number with %s by another channel "+
		"(in person, by phone) before you accept the new key.\n\n", name, name, name)
	s += "[red::b]a[-::-] accept the new key    [::b]k[::-] or [::b]Esc[::-] keep blocked"
	return s
}

func (u *UI) acceptKeyChange() {
	name := u.keyChange.current.name
	u.keyChange.current = keyChange{}
	u.closeOverlay()
	u.acceptKey(name)
}

// acceptKey pins the new key of name and unblocks sending to it.
func (u *UI) acceptKey(name domain.Username) {
	u.keyChange.dropKeyChange(name)
	u.spawn("accept the new key of "+name.String(), func(ctx context.Context) (func(), error) {
		if err := u.client.AcceptKeyChange(ctx, name); err != nil {
			return nil, err
		}
		return func() {
			u.peers.markKeyChanged(u, name, false)
			u.peers.markVerified(u, name, false)
			u.conv.renderTitle(u)
			u.showNotice("accepted the new key of " + escapeLine(name.String()) + " — verify it with Ctrl-S")
		}, nil
	})
}

func (u *UI) keepBlocked() {
	name := u.keyChange.current.name
	u.keyChange.current = keyChange{}
	u.closeOverlay()
	u.showNotice("[red]⚠[-] " + escapeLine(name.String()) + " stays blocked until you accept the new key (/verify " + escapeLine(name.String()) + ")")
}

// dropKeyChange forgets a queued warning (the key change was resolved elsewhere).
func (k *keyChangeDialog) dropKeyChange(name domain.Username) {
	k.pending = slices.DeleteFunc(k.pending, func(kc keyChange) bool { return kc.name.Equal(name) })
}
