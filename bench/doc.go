// Package bench holds cross-layer benchmarks: whole clients composed from
// the real adapters (TCP mutual-TLS link, SQLite storage, files on disk, an
// in-process HTTPS registry) talking over loopback, measured end to end
// through the driving port. It is composition, like cmd/: its tests may
// import app, domain, ports, every adapter and the root wiring.
//
// It holds no production code and must not: nothing imports it, and its
// benchmarks never assert timing (they report figures with b.ReportMetric).
// The figures and how they were taken are in the results-*.md files beside
// this one.
package bench
