// Package ports holds the interfaces between the use-cases in app/ and the
// world: what the use-cases need (driven ports: Directory, MessageLink,
// FileTransport, stores, Clock, EventSink …) and what they offer to user
// interfaces (the driving port Client).
//
// Note: in some hexagonal Go examples (ThreeDotsLabs' wild-workouts) "ports"
// means the driving adapters (HTTP handlers). Here it means the interfaces
// only; every implementation lives under adapters/, and each driven port has
// at least two: the real adapter and adapters/memory.
//
// Ports import domain and the standard library, nothing else of the project.
package ports
