package seal

import (
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/wire"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Suite is the name of the HPKE suite of every key this package makes.
const Suite = "mlkem768x25519-hkdf-sha256-chacha20poly1305"

// Format constants (docs/peer-protocol.md §9.2, §9.3).
const (
	blobVersion = 1
	blobHeader  = 1 + 4 // version, key ID
	letterTag   = "chatx-letter-v1"
	infoTag     = "chatx-mail-v1"
	// Bounds of the letter's fields (the whole blob is ≤ ports.MaxMailSize).
	maxName   = 64
	maxBody   = domain.MaxMessageBytes
	maxReason = 1024
	maxFiles  = 1024
	maxPath   = 4096
)

// ProviderSet provides the sealer.
var ProviderSet = wire.NewSet(New, wire.Bind(new(ports.MailSealer), new(*Sealer)))

// Sealer is ports.MailSealer over crypto/hpke.
type Sealer struct {
	kem  hpke.KEM
	kdf  hpke.KDF
	aead hpke.AEAD
}

var _ ports.MailSealer = (*Sealer)(nil)

// New returns the sealer of Suite.
func New() *Sealer {
	return &Sealer{kem: hpke.MLKEM768X25519(), kdf: hpke.HKDFSHA256(), aead: hpke.ChaCha20Poly1305()}
}

// Suite names the suite of the keys NewKey makes.
func (s *Sealer) Suite() string { return Suite }

// NewKey makes a mailbox key pair.
func (s *Sealer) NewKey() (public, private []byte, err error) {
	k, err := s.kem.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("mailbox key: %w", err)
	}
	priv, err := k.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("mailbox key: %w", err)
	}
	return k.PublicKey().Bytes(), priv, nil
}

// info binds the HPKE context to the recipient: its name and identity key.
func info(to domain.Identity) []byte {
	b := []byte(infoTag)
	b = appendField(b, []byte(to.Name().String()))
	return appendField(b, to.PublicKey())
}

// Seal signs l as from and seals it to key.
func (s *Sealer) Seal(from domain.LocalIdentity, key ports.SignedPrekey, l ports.Letter) ([]byte, error) {
	switch {
	case key.Suite != Suite:
		return nil, fmt.Errorf("seal: recipient's mailbox key is of suite %.64q, want %s", key.Suite, Suite)
	case !l.From.SameKey(from.PublicKey()) || !l.From.Name().Equal(from.Name()):
		return nil, errors.New("seal: the letter must name its signer as sender")
	case !l.To.Name().Equal(key.Name):
		return nil, errors.New("seal: the mailbox key is not the recipient's")
	}
	pk, err := s.kem.NewPublicKey(key.Public)
	if err != nil {
		return nil, fmt.Errorf("seal: recipient's mailbox key: %w", err)
	}
	body, err := encodeLetter(l, key.KeyID)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	plain := appendField(body, from.Sign(signedBytes(body)))
	ct, err := hpke.Seal(pk, s.kdf, s.aead, info(l.To), plain)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	blob := make([]byte, blobHeader, blobHeader+len(ct))
	blob[0] = blobVersion
	binary.BigEndian.PutUint32(blob[1:], key.KeyID)
	blob = append(blob, ct...)
	if len(blob) > ports.MaxMailSize {
		return nil, fmt.Errorf("seal: %w: sealed letter of %d bytes (at most %d)", domain.ErrTooLarge, len(blob), ports.MaxMailSize)
	}
	return blob, nil
}

func signedBytes(body []byte) []byte { return append([]byte(letterTag), body...) }

// Open opens a blob sealed to one of our keys and checks the letter.
func (s *Sealer) Open(me domain.Identity, private func(keyID uint32) ([]byte, bool), blob []byte, now time.Time) (ports.Letter, error) {
	if len(blob) < blobHeader || blob[0] != blobVersion || len(blob) > ports.MaxMailSize {
		return ports.Letter{}, fmt.Errorf("%w: not a version %d blob", ports.ErrMailUnreadable, blobVersion)
	}
	keyID := binary.BigEndian.Uint32(blob[1:])
	raw, ok := private(keyID)
	if !ok {
		return ports.Letter{}, fmt.Errorf("%w: no key %d (deleted or never ours)", ports.ErrMailUnreadable, keyID)
	}
	k, err := s.kem.NewPrivateKey(raw)
	if err != nil {
		return ports.Letter{}, fmt.Errorf("%w: our key %d: %v", ports.ErrMailUnreadable, keyID, err)
	}
	plain, err := hpke.Open(k, s.kdf, s.aead, info(me), blob[blobHeader:])
	if err != nil {
		return ports.Letter{}, fmt.Errorf("%w: %v", ports.ErrMailUnreadable, err)
	}
	d := &decoder{b: plain}
	l, sealedKeyID := d.letter()
	bodyLen := len(plain) - len(d.b)
	sig := d.field(ed25519.SignatureSize)
	if d.err != nil || len(d.b) != 0 || len(sig) != ed25519.SignatureSize {
		return ports.Letter{}, fmt.Errorf("%w: malformed letter", ports.ErrMailUnreadable)
	}
	if err := domain.Verify(l.From.PublicKey(), signedBytes(plain[:bodyLen]), sig); err != nil {
		return ports.Letter{}, fmt.Errorf("letter from %s: %w", l.From.Name(), err)
	}
	// Signed inside: a letter re-sealed to another key or for another
	// recipient is refused even if the outer layers were rebuilt.
	if sealedKeyID != keyID || !l.To.Name().Equal(me.Name()) || !l.To.SameKey(me.PublicKey()) {
		return ports.Letter{}, fmt.Errorf("%w: letter from %s is addressed to someone else", ports.ErrMailUnreadable, l.From.Name())
	}
	if !now.Before(l.Expires) {
		return ports.Letter{}, fmt.Errorf("letter from %s: %w at %s", l.From.Name(), ports.ErrMailExpired, l.Expires.UTC().Format(time.RFC3339))
	}
	return l, nil
}

func appendField(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendIdentity(b []byte, id domain.Identity) []byte {
	b = appendField(b, []byte(id.Name().String()))
	return appendField(b, id.PublicKey())
}

// encodeLetter is the signed part of a letter (§9.3).
func encodeLetter(l ports.Letter, keyID uint32) ([]byte, error) {
	e := l.Envelope
	if len(e.Body) > maxBody || len(e.Reason) > maxReason || len(e.Manifest.Files) > maxFiles {
		return nil, fmt.Errorf("%w: envelope too large for a letter", domain.ErrTooLarge)
	}
	b := appendIdentity(nil, l.From)
	b = appendIdentity(b, l.To)
	b = binary.BigEndian.AppendUint32(b, keyID)
	b = binary.BigEndian.AppendUint64(b, uint64(l.Expires.Unix()))
	b = append(b, byte(e.Kind))
	b = append(b, e.MessageID[:]...)
	var sent int64 // 0: no time (acknowledgements)
	if !e.SentAt.IsZero() {
		sent = e.SentAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(sent))
	b = appendField(b, []byte(e.Body))
	b = append(b, e.TransferID[:]...)
	b = appendField(b, []byte(e.Reason))
	b = appendField(b, []byte(e.Manifest.Name))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Manifest.Files)))
	for _, f := range e.Manifest.Files {
		if len(f.Path) > maxPath {
			return nil, fmt.Errorf("%w: path in an offer", domain.ErrTooLarge)
		}
		b = appendField(b, []byte(f.Path))
		b = binary.BigEndian.AppendUint64(b, uint64(f.Size))
		b = append(b, f.Hash[:]...)
	}
	return b, nil
}

// decoder reads the letter layout; the first error sticks and every
// length is checked before it is used.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errors.New("malformed letter")
	}
	d.b = nil
}

func (d *decoder) next(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() uint32 {
	v := d.next(4)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func (d *decoder) u64() uint64 {
	v := d.next(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (d *decoder) field(max int) []byte {
	n := d.u32()
	if int64(n) > int64(max) {
		d.fail()
		return nil
	}
	return d.next(int(n))
}

func (d *decoder) text(max int) string {
	v := d.field(max)
	if !utf8.Valid(v) {
		d.fail()
	}
	return string(v)
}

func (d *decoder) identity() domain.Identity {
	raw := d.text(maxName)
	name, err := domain.ParseUsername(raw)
	key := d.field(ed25519.PublicKeySize)
	// Only the normalised form: one name, one encoding.
	if d.err != nil || err != nil || name.String() != raw || len(key) != ed25519.PublicKeySize {
		d.fail()
		return domain.Identity{}
	}
	id, err := domain.NewIdentity(name, key)
	if err != nil {
		d.fail()
	}
	return id
}

func (d *decoder) letter() (ports.Letter, uint32) {
	var l ports.Letter
	l.From = d.identity()
	l.To = d.identity()
	keyID := d.u32()
	l.Expires = time.Unix(int64(d.u64()), 0).UTC()
	e := &l.Envelope
	if k := d.next(1); k != nil {
		e.Kind = ports.EnvelopeKind(k[0])
	}
	copy(e.MessageID[:], d.next(len(e.MessageID)))
	if sent := int64(d.u64()); sent != 0 {
		e.SentAt = time.Unix(0, sent).UTC()
	}
	e.Body = d.text(maxBody)
	copy(e.TransferID[:], d.next(len(e.TransferID)))
	e.Reason = d.text(maxReason)
	e.Manifest.Name = d.text(maxPath)
	n := d.u32()
	if n > maxFiles {
		d.fail()
		return l, 0
	}
	if n > 0 {
		e.Manifest.Files = make([]domain.FileEntry, 0, min(int(n), len(d.b)/44+1))
		for range n {
			var f domain.FileEntry
			f.Path = d.text(maxPath)
			f.Size = int64(d.u64())
			copy(f.Hash[:], d.next(len(f.Hash)))
			if d.err != nil {
				return l, 0
			}
			e.Manifest.Files = append(e.Manifest.Files, f)
		}
	}
	return l, keyID
}
