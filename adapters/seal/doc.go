// Package seal seals mailbox letters with HPKE (RFC 9180, Go's
// crypto/hpke) to a recipient's published mailbox key and opens those
// sealed to ours: ports.MailSealer. The format is docs/peer-protocol.md §9.
//
// Suite: the hybrid KEM ML-KEM-768 + X25519 (X-Wing, draft-ietf-hpke-pq),
// HKDF-SHA256, ChaCha20-Poly1305. Mail rests at a third party for up to 30
// days, which is exactly what "harvest now, decrypt later" needs; the
// hybrid stays as strong as X25519 if ML-KEM were broken, and as
// ML-KEM-768 against a quantum computer. It costs a 1216-byte public key
// and 1120 bytes of encapsulation per mail (64 KiB blobs leave room), and
// well under a millisecond of CPU. ChaCha20-Poly1305 is constant-time
// without AES instructions.
//
// The package keeps no state and never logs; it must not decide trust
// (the caller checks the sender's key against its pins).
package seal
