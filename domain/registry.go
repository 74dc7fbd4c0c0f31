package domain

import (
	"crypto/ed25519"
	"encoding/binary"
)

// RegistryAction names what a signed registry request asks for.
type RegistryAction string

// Registry actions that need proof of possession of the name's key.
const (
	ActionRegister   RegistryAction = "register"
	ActionUnregister RegistryAction = "unregister"
)

// ChallengeSize is the length of a registry challenge in bytes.
const ChallengeSize = 32

// RegistryProof is what a client signs to prove it holds the key bound to a
// name: the action, the name, the key, a fresh single-use challenge from the
// registry and the endpoints it advertises. The registry rebuilds the same
// bytes from the request and checks the signature, so a request cannot be
// replayed (the challenge is used up) or altered (every field is signed).
type RegistryProof struct {
	Action    RegistryAction
	Name      Username
	Key       ed25519.PublicKey
	Challenge []byte
	Endpoints Endpoints
}

// SigningBytes is the exact message that is signed: the ASCII tag
// "chatx-registry-v1", then each field as a 4-byte big-endian length and its
// bytes, in this order: action, normalised name, key, challenge, the number of
// link endpoints (4 bytes) and each link endpoint, the number of file
// endpoints and each file endpoint.
func (p RegistryProof) SigningBytes() []byte {
	b := []byte("chatx-registry-v1")
	field := func(v []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	list := func(vs []string) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(vs)))
		for _, v := range vs {
			field([]byte(v))
		}
	}
	field([]byte(p.Action))
	field([]byte(p.Name.String()))
	field(p.Key)
	field(p.Challenge)
	list(p.Endpoints.Link)
	list(p.Endpoints.File)
	return b
}

// Sign signs the proof with the local identity.
func (p RegistryProof) Sign(me LocalIdentity) []byte { return me.Sign(p.SigningBytes()) }

// Check verifies sig over the proof against the proof's key.
func (p RegistryProof) Check(sig []byte) error { return Verify(p.Key, p.SigningBytes(), sig) }
