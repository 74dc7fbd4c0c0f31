// Package app holds ChatX's use-cases, one per file, each reading like the
// sentence a user would say: Register, DiscoverPeers, SendMessage,
// ReceiveMessage, TransferFile, ReceiveFile, AcceptTransfer, DeclineTransfer,
// CancelTransfer, VerifyContact, SearchHistory. Client composes them into the
// driving port ports.Client, PeerVerifier is the ports.PeerVerifier the link
// adapters are built with, and Bus fans events out to user interfaces. The
// registry service (registry*.go) lives here too.
//
// The rules the client keeps, whatever adapters it runs on:
//   - A message is in the outbox (MessageStore.SaveOutgoingStaged) before it
//     is reported; it goes to the peer once committed, while the store
//     flushes it, and Send returns once it is durable. A flusher per peer
//     writes the outbox oldest first and writes again every message not
//     acknowledged within the retry interval (1 s doubling to 30 s,
//     jittered, back to 1 s on progress or when the peer comes online)
//     until a KindDelivered arrives from that peer. Our send times strictly
//     increase, and sends that overlap are reported and written in the
//     order they were started, so receivers order by SentAt.
//   - One durable write per message per side: the sender's state marks
//     (sent, delivered, read) are batched and lazy (MarkStates): a mark
//     lost in a power cut only makes the sender write the message again,
//     which the receiver deduplicates. "Delivered" is reported when the
//     peer's acknowledgement arrives (the message is durable there) and
//     the message itself was reported, without waiting for its mark; the
//     history shows it delivered from then on.
//   - A received chat is stored once (deduplicated by sender and ID) and
//     acknowledged every time it arrives: a repeat means the ack was lost.
//   - Trust on first use: the first key seen for a name is pinned; another
//     key later blocks sending (*domain.KeyChangedError, KeyChangedEvent)
//     and links with it are refused until the user accepts it.
//   - A transfer is offered (KindOffer) with every file's size (and a hash
//     field, zero since files are hashed while they are sent),
//     streamed only after KindAccept, one file after the other, resumed from
//     what the receiver holds after any interruption or restart; a file gets
//     its final name only after its hash matched. Unanswered offers and
//     acceptances are sent again until answered.
//
// The package imports only domain, ports and the standard library. It must
// not know sockets, files, databases, terminals or Wire: everything it needs
// from the world reaches it through a port, so adapters/memory can stand in
// for every adapter in tests.
package app
