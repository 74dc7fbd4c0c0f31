package domain

import (
	"crypto/ed25519"
	"encoding/binary"
	"time"
)

// Registry actions of the mailbox: fetching and deleting one's parked mail
// need proof of possession of the name's key over a fresh challenge.
const (
	ActionMailboxFetch  RegistryAction = "mailbox-fetch"
	ActionMailboxDelete RegistryAction = "mailbox-delete"
)

// PrekeyTag starts the bytes a user signs to publish a mailbox key.
const PrekeyTag = "chatx-prekey-v1"

// PrekeySigningBytes is the exact message an identity key signs to vouch
// for a mailbox key (docs/peer-protocol.md §9.1): the ASCII tag
// "chatx-prekey-v1", then, each as a 4-byte big-endian length and its
// bytes: the normalised name, the identity public key, the key ID (4 bytes
// big-endian), the suite name, the mailbox public key, the creation and
// the expiry time (each 8 bytes, big-endian Unix seconds).
func PrekeySigningBytes(name Username, identity ed25519.PublicKey, keyID uint32, suite string, public []byte, created, expires time.Time) []byte {
	b := []byte(PrekeyTag)
	b = appendField(b, []byte(name.String()))
	b = appendField(b, identity)
	b = appendField(b, binary.BigEndian.AppendUint32(nil, keyID))
	b = appendField(b, []byte(suite))
	b = appendField(b, public)
	b = appendField(b, binary.BigEndian.AppendUint64(nil, uint64(created.Unix())))
	b = appendField(b, binary.BigEndian.AppendUint64(nil, uint64(expires.Unix())))
	return b
}
