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

// Proof tags: the first bytes of the signed message, naming its layout.
const (
	ProofTagV1 = "chatx-registry-v1"
	ProofTagV2 = "chatx-registry-v2"
)

// SigningBytes is the exact message that is signed (layout v2, see
// docs/registry-api.md §4): the ASCII tag "chatx-registry-v2", then each
// field as a 4-byte big-endian length and its bytes, in this order: action,
// normalised name, key, challenge; then the number of candidates (4 bytes)
// and each candidate as three fields — type ("host"), network ("tcp" for a
// link endpoint, "udp" for a file endpoint) and address — link endpoints
// first, then file endpoints, each list in its order.
//
// v2 states each address's candidate type and transport inside the signed
// bytes, so what a signature covers does not depend on list position and
// later candidate types can be signed without a new layout.
func (p RegistryProof) SigningBytes() []byte {
	b := p.head(ProofTagV2)
	b = binary.BigEndian.AppendUint32(b, uint32(len(p.Endpoints.Link)+len(p.Endpoints.File)))
	for _, l := range []struct {
		net  string
		list []string
	}{{"tcp", p.Endpoints.Link}, {"udp", p.Endpoints.File}} {
		for _, e := range l.list {
			b = appendField(b, []byte(CandidateHost))
			b = appendField(b, []byte(l.net))
			b = appendField(b, []byte(e))
		}
	}
	return b
}

// SigningBytesV1 is the retired v1 layout: the tag "chatx-registry-v1",
// action, name, key, challenge as length-prefixed fields, then the link and
// the file endpoints each as a count and length-prefixed strings. The
// registry only uses it to tell an outdated client why it is refused.
func (p RegistryProof) SigningBytesV1() []byte {
	b := p.head(ProofTagV1)
	for _, vs := range [][]string{p.Endpoints.Link, p.Endpoints.File} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(vs)))
		for _, v := range vs {
			b = appendField(b, []byte(v))
		}
	}
	return b
}

func (p RegistryProof) head(tag string) []byte {
	b := []byte(tag)
	b = appendField(b, []byte(p.Action))
	b = appendField(b, []byte(p.Name.String()))
	b = appendField(b, p.Key)
	return appendField(b, p.Challenge)
}

func appendField(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// IsV1 reports whether sig is a valid signature of the retired v1 layout
// (an outdated client), so the registry can say so instead of
// "bad signature".
func (p RegistryProof) IsV1(sig []byte) bool { return Verify(p.Key, p.SigningBytesV1(), sig) == nil }

// Sign signs the proof with the local identity.
func (p RegistryProof) Sign(me LocalIdentity) []byte { return me.Sign(p.SigningBytes()) }

// Check verifies sig over the proof against the proof's key.
func (p RegistryProof) Check(sig []byte) error { return Verify(p.Key, p.SigningBytes(), sig) }
