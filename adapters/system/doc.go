// Package system adapts the operating system's clock to ports.Clock. It holds
// nothing else: files live in adapters/files, sockets in tcp and udp.
package system
