// Package e2e holds end-to-end tests of the built chatx binary: a registry
// process and several `chatx jsonrpc` client processes talking over real
// loopback sockets, or, in TestReachability, across a network-namespace
// model of the internet with NAT routers (e2e/internal/netlab, which only
// these tests import). It has no code of its own outside its tests.
package e2e
