package tui

// certWarning is the blocking warning shown when the registry presents a
// certificate other than the pinned one, as serious as a peer's key change:
// someone may be intercepting the connection. It is shown once per distinct
// mismatch (the client retries in the background and would report it again).
type certWarning struct {
	shown string // the error last shown
}

func (u *UI) showCertWarning(err string) {
	if u.cert.shown == err {
		return
	}
	u.cert.shown = err
	v := dialogView(" ⚠ REGISTRY CERTIFICATE CHANGED ")
	v.SetText("[red::b]The registry presented a certificate other than the one you pinned.[-::-]\n\n" +
		"Someone may be intercepting the connection to the registry. ChatX does not talk to it: " +
		"you stay offline, and peers are not looked up, until this is resolved.\n\n" +
		escapeLine(err) + "\n\n" +
		"Ask whoever runs the registry whether its certificate was replaced, and compare the new fingerprint " +
		"by another channel before you update the pin.\n\n" +
		"[::b]Esc[::-] close (the status bar keeps saying so)")
	u.showOverlay(pageCert, centered(v, 80, 20), v)
}
