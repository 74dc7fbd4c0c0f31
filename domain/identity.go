package domain

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// PeerID is a short, stable, printable identifier derived from a public key:
// the first 20 bytes of SHA-256(key) in lower-case base32 without padding.
type PeerID string

// Fingerprint is SHA-256 of an Ed25519 public key.
type Fingerprint [32]byte

// String renders the fingerprint in 16 groups of four hex digits.
func (f Fingerprint) String() string {
	h := hex.EncodeToString(f[:])
	var b strings.Builder
	for i := 0; i < len(h); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h[i : i+4])
	}
	return b.String()
}

// Short is the first four groups, for status bars and warnings.
func (f Fingerprint) Short() string { return f.String()[:19] }

// IsZero reports whether f is the zero fingerprint.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// Identity is a user as others see them: a name bound to an Ed25519 public key.
type Identity struct {
	name Username
	key  ed25519.PublicKey
}

// NewIdentity binds name to key after checking the key's length.
func NewIdentity(name Username, key ed25519.PublicKey) (Identity, error) {
	if name.IsZero() {
		return Identity{}, fmt.Errorf("%w: empty name", ErrInvalidUsername)
	}
	if len(key) != ed25519.PublicKeySize {
		return Identity{}, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(key), ed25519.PublicKeySize)
	}
	return Identity{name: name, key: append(ed25519.PublicKey(nil), key...)}, nil
}

// Name is the identity's username.
func (i Identity) Name() Username { return i.name }

// PublicKey returns a copy of the identity's key.
func (i Identity) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), i.key...) }

// IsZero reports whether i is the zero value.
func (i Identity) IsZero() bool { return len(i.key) == 0 }

// Fingerprint of the identity's key.
func (i Identity) Fingerprint() Fingerprint { return FingerprintOf(i.key) }

// PeerID of the identity's key.
func (i Identity) PeerID() PeerID { return PeerIDOf(i.key) }

// SameKey reports whether key is this identity's key (constant time).
func (i Identity) SameKey(key ed25519.PublicKey) bool {
	return len(key) == len(i.key) && subtle.ConstantTimeCompare(key, i.key) == 1
}

// FingerprintOf hashes a public key.
func FingerprintOf(key ed25519.PublicKey) Fingerprint { return sha256.Sum256(key) }

var peerIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// PeerIDOf derives the PeerID of a public key.
func PeerIDOf(key ed25519.PublicKey) PeerID {
	sum := sha256.Sum256(key)
	return PeerID(strings.ToLower(peerIDEncoding.EncodeToString(sum[:20])))
}

// SafetyNumber is the number two users compare out of band to verify each
// other: 60 digits in 12 groups of five, derived from both keys. Both sides
// compute the same digits (the keys are sorted first) and the number changes
// when either key changes.
func SafetyNumber(a, b ed25519.PublicKey) string {
	lo, hi := a, b
	if string(hi) < string(lo) {
		lo, hi = hi, lo
	}
	h := sha256.New()
	h.Write([]byte("chatx-safety-number-v1\x00"))
	h.Write(lo)
	h.Write(hi)
	sum := h.Sum(nil)
	// Chain a second round so there are 12 five-byte chunks (60 bytes).
	sum2 := sha256.Sum256(sum)
	sum = append(sum, sum2[:]...)
	groups := make([]string, 12)
	for i := range groups {
		var buf [8]byte
		copy(buf[3:], sum[i*5:i*5+5])
		groups[i] = fmt.Sprintf("%05d", binary.BigEndian.Uint64(buf[:])%100000)
	}
	return strings.Join(groups, " ")
}

// LocalIdentity is the user's own identity with its private key. It never
// leaves the process except sealed by the key store.
type LocalIdentity struct {
	Identity
	priv ed25519.PrivateKey
}

// NewLocalIdentity pairs a name with a private key.
func NewLocalIdentity(name Username, priv ed25519.PrivateKey) (LocalIdentity, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return LocalIdentity{}, fmt.Errorf("%w: private key of %d bytes", ErrInvalidKey, len(priv))
	}
	id, err := NewIdentity(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return LocalIdentity{}, err
	}
	return LocalIdentity{Identity: id, priv: append(ed25519.PrivateKey(nil), priv...)}, nil
}

// Sign signs msg with the private key.
func (l LocalIdentity) Sign(msg []byte) []byte { return ed25519.Sign(l.priv, msg) }

// PrivateKey returns the private key, for TLS certificates and the key store.
func (l LocalIdentity) PrivateKey() ed25519.PrivateKey { return l.priv }

// Verify checks an Ed25519 signature.
func Verify(key ed25519.PublicKey, msg, sig []byte) error {
	if len(key) != ed25519.PublicKeySize {
		return ErrInvalidKey
	}
	if !ed25519.Verify(key, msg, sig) {
		return ErrBadSignature
	}
	return nil
}
