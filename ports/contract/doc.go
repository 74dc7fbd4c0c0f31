// Package contract holds reusable test suites, one per driven port, that
// check the promises the port's doc comments make. Every implementation of
// a port (adapters/memory and the real adapter) runs the same suite from its
// own tests:
//
//	func TestMessageStore(t *testing.T) {
//		contract.MessageStore(t, func(t *testing.T) ports.MessageStore { return NewMessageStore() })
//	}
//
// open is called once per subtest and must return a new, empty store; it
// registers its own cleanup with t.Cleanup. The suites assert only what the
// ports document, never an implementation's choices where a port is silent
// (ties in ordering, limit <= 0, empty queries). Times used are whole seconds
// in UTC so stores that keep less than nanosecond precision pass.
//
// This package imports testing, domain, ports and the standard library only.
package contract
