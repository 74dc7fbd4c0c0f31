package tcp

// Dialable exposes the TCP endpoint filter to the tests.
var Dialable = dialable
