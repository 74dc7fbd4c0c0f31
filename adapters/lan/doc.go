// Package lan finds peers on the local network without any server: every
// client multicasts a signed announcement (name, key, the message-link and
// file-transport addresses it has on that network, an instance ID and a
// sequence number) every Interval, and listens for the others'. It is a
// ports.Directory: Register starts announcing, Unregister says goodbye,
// Lookup, Online and Watch answer from what was heard.
//
// The package decides nothing about trust: it proves only that an
// announcement was signed by the key inside it. Whether that key may speak
// for the name (pins, trust on first use, the registry's binding) is the
// use-cases' decision. The wire format, timing and limits are in
// docs/lan-discovery.md.
package lan
