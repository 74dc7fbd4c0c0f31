package storage

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// KeyFile is the name of the identity key file inside the profile directory.
const KeyFile = "identity.key"

// Passphrase seals the identity key file; the empty passphrase leaves it
// unsealed. Its String and LogValue never show it.
type Passphrase string

// String hides the passphrase from fmt.
func (Passphrase) String() string { return "[passphrase]" }

// LogValue hides the passphrase from slog.
func (Passphrase) LogValue() slog.Value { return slog.StringValue("[passphrase]") }

// KDFParams are the Argon2id parameters used to seal a key file. They are
// stored in the file, so a file is always opened with the parameters it was
// sealed with.
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultKDF is what Save uses unless told otherwise: 3 passes over 64 MiB
// with 2 lanes (a few hundred milliseconds on a laptop).
var DefaultKDF = KDFParams{Time: 3, MemoryKiB: 64 << 10, Threads: 2}

// Bounds a key file's KDF parameters must meet, so a planted file cannot
// make Load spend unbounded time or memory.
const (
	maxKDFTime      = 64
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFThreads   = 64
)

// Errors of the key store. Load wraps them; test with errors.Is.
var (
	ErrWrongPassphrase     = errors.New("wrong passphrase for the identity key")
	ErrPassphraseRequired  = errors.New("the identity key is sealed: a passphrase is required")
	ErrDamagedKeyFile      = errors.New("identity key file is damaged")
	ErrInsecurePermissions = errors.New("file is readable or writable by other users")
)

// Key file format, version 1. All integers big-endian.
//
//	offset  size  field
//	0       8     magic "CHATXKEY"
//	8       1     format version, 1
//	9       1     kind: 0 = plain, 1 = sealed
//	10      1     n, the length of the name
//	11      n     the username, normalised (domain.Username.String())
//	plain:
//	        32    the Ed25519 seed (RFC 8032 private key)
//	sealed:
//	        4     Argon2id time (passes)
//	        4     Argon2id memory in KiB
//	        1     Argon2id threads
//	        16    salt (random)
//	        24    nonce (random)
//	        48    XChaCha20-Poly1305 sealed seed (32 bytes + 16-byte tag); the key
//	              is Argon2id(passphrase, salt, time, memory, threads, 32) and the
//	              additional data is every byte of the file before this field
//	end:
//	        32    SHA-256 of every byte before it
//
// The trailing checksum tells a damaged file (ErrDamagedKeyFile) from a wrong
// passphrase (ErrWrongPassphrase, the AEAD refuses to open). The file is
// written with mode 0600 through a temporary file, fsync and rename, and
// refused on load when its mode lets anyone else read or write it.
const (
	keyMagic       = "CHATXKEY"
	keyVersion     = 1
	kindPlain      = 0
	kindSealed     = 1
	saltSize       = 16
	seedSize       = ed25519.SeedSize
	sumSize        = sha256.Size
	maxKeyFileSize = 512
)

var _ ports.KeyStore = (*KeyStore)(nil)

// KeyStore keeps the profile's identity (name and Ed25519 private key) in
// the file KeyFile of the profile directory (ports.KeyStore).
type KeyStore struct {
	path string
	pass Passphrase
	kdf  KDFParams
}

// NewKeyStore returns the key store of the profile in dir; a non-empty pass
// seals the key on Save and opens it on Load.
func NewKeyStore(dir ProfileDir, pass Passphrase) *KeyStore {
	return &KeyStore{path: filepath.Join(string(dir), KeyFile), pass: pass, kdf: DefaultKDF}
}

// WithKDF returns a copy that seals with p instead of DefaultKDF (tests use
// cheap parameters; files sealed either way open with either).
func (k *KeyStore) WithKDF(p KDFParams) *KeyStore {
	c := *k
	c.kdf = p
	return &c
}

// Path is the key file's path.
func (k *KeyStore) Path() string { return k.path }

// Load reads the identity. domain.ErrNoIdentity: there is no key file.
// ErrPassphraseRequired, ErrWrongPassphrase, ErrDamagedKeyFile and
// ErrInsecurePermissions say why an existing file was refused. A plain file
// loads with or without a passphrase; with one, Load seals it on the spot
// (atomically, as Save does) and fails if it cannot, so a passphrase given
// never leaves the key in the clear on disk.
func (k *KeyStore) Load(ctx context.Context) (domain.LocalIdentity, error) {
	if err := ctx.Err(); err != nil {
		return domain.LocalIdentity{}, err
	}
	fi, err := os.Lstat(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return domain.LocalIdentity{}, fmt.Errorf("load identity from %s: %w", k.path, domain.ErrNoIdentity)
	}
	if err != nil {
		return domain.LocalIdentity{}, fmt.Errorf("load identity: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return domain.LocalIdentity{}, fmt.Errorf("load identity: %s is not a regular file (%s)", k.path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return domain.LocalIdentity{}, fmt.Errorf("load identity: %w: %s has mode %04o, want 0600 (run: chmod 600 %s)",
			ErrInsecurePermissions, k.path, perm, k.path)
	}
	f, err := os.Open(k.path)
	if err != nil {
		return domain.LocalIdentity{}, fmt.Errorf("load identity: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return domain.LocalIdentity{}, fmt.Errorf("load identity: read %s: %w", k.path, err)
	}
	id, err := decodeKeyFile(data, k.pass)
	if err != nil {
		return domain.LocalIdentity{}, fmt.Errorf("load identity from %s: %w", k.path, err)
	}
	if k.pass != "" && data[len(keyMagic)+1] == kindPlain { // decodeKeyFile checked the header
		if err := k.Save(ctx, id); err != nil {
			return domain.LocalIdentity{}, fmt.Errorf("load identity: seal the unsealed key file with the passphrase: %w", err)
		}
	}
	return id, nil
}

// Save writes the identity with mode 0600, sealed when the store has a
// passphrase, replacing any saved one atomically (temporary file, fsync,
// rename, fsync of the directory).
func (k *KeyStore) Save(ctx context.Context, id domain.LocalIdentity) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := encodeKeyFile(id, k.pass, k.kdf)
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save identity: create profile directory: %w", err)
	}
	if err := writeFileAtomic(k.path, data); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func encodeKeyFile(id domain.LocalIdentity, pass Passphrase, kdf KDFParams) ([]byte, error) {
	priv := id.PrivateKey()
	if len(priv) != ed25519.PrivateKeySize || id.Name().IsZero() {
		return nil, fmt.Errorf("%w: incomplete identity", domain.ErrInvalidKey)
	}
	name := id.Name().String()
	if len(name) > 255 {
		return nil, fmt.Errorf("%w: name of %d bytes", domain.ErrInvalidUsername, len(name))
	}
	var b bytes.Buffer
	b.WriteString(keyMagic)
	b.WriteByte(keyVersion)
	if pass == "" {
		b.WriteByte(kindPlain)
	} else {
		b.WriteByte(kindSealed)
	}
	b.WriteByte(byte(len(name)))
	b.WriteString(name)
	seed := priv.Seed()
	defer clear(seed)
	if pass == "" {
		b.Write(seed)
	} else {
		if err := checkKDF(kdf); err != nil {
			return nil, err
		}
		salt := make([]byte, saltSize)
		nonce := make([]byte, chacha20poly1305.NonceSizeX)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		b.Write(binary.BigEndian.AppendUint32(nil, kdf.Time))
		b.Write(binary.BigEndian.AppendUint32(nil, kdf.MemoryKiB))
		b.WriteByte(kdf.Threads)
		b.Write(salt)
		b.Write(nonce)
		aead, err := sealKey(pass, salt, kdf)
		if err != nil {
			return nil, err
		}
		aad := bytes.Clone(b.Bytes())
		b.Write(aead.Seal(nil, nonce, seed, aad))
	}
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return b.Bytes(), nil
}

func checkKDF(p KDFParams) error {
	if p.Time < 1 || p.Time > maxKDFTime || p.Threads < 1 || p.Threads > maxKDFThreads ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB {
		return fmt.Errorf("argon2id parameters out of bounds: time %d, memory %d KiB, threads %d", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// sealKey derives the file key from the passphrase and returns its AEAD.
func sealKey(pass Passphrase, salt []byte, p KDFParams) (cipher.AEAD, error) {
	key := argon2.IDKey([]byte(pass), salt, p.Time, p.MemoryKiB, p.Threads, chacha20poly1305.KeySize)
	defer clear(key)
	return chacha20poly1305.NewX(key)
}

// keyReader walks a key file's fields.
type keyReader struct {
	b   []byte
	off int
	bad bool
}

func (r *keyReader) next(n int) []byte {
	if r.bad || n < 0 || len(r.b)-r.off < n {
		r.bad = true
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func decodeKeyFile(data []byte, pass Passphrase) (domain.LocalIdentity, error) {
	var zero domain.LocalIdentity
	if len(data) > maxKeyFileSize {
		return zero, fmt.Errorf("%w: longer than %d bytes", ErrDamagedKeyFile, maxKeyFileSize)
	}
	if len(data) < len(keyMagic)+3+sumSize || string(data[:len(keyMagic)]) != keyMagic {
		return zero, fmt.Errorf("%w: not a ChatX key file", ErrDamagedKeyFile)
	}
	body, sum := data[:len(data)-sumSize], data[len(data)-sumSize:]
	want := sha256.Sum256(body)
	if subtle.ConstantTimeCompare(sum, want[:]) != 1 {
		return zero, fmt.Errorf("%w: checksum mismatch", ErrDamagedKeyFile)
	}
	r := &keyReader{b: body}
	r.next(len(keyMagic))
	hdr := r.next(3)
	if r.bad {
		return zero, fmt.Errorf("%w: truncated header", ErrDamagedKeyFile)
	}
	if hdr[0] != keyVersion {
		return zero, fmt.Errorf("%w: format version %d, this program reads %d", ErrDamagedKeyFile, hdr[0], keyVersion)
	}
	kind := hdr[1]
	rawName := string(r.next(int(hdr[2])))
	var seed []byte
	switch kind {
	case kindPlain:
		seed = bytes.Clone(r.next(seedSize))
		if r.bad || r.off != len(body) {
			return zero, fmt.Errorf("%w: bad length", ErrDamagedKeyFile)
		}
	case kindSealed:
		t := r.next(4)
		m := r.next(4)
		th := r.next(1)
		salt := r.next(saltSize)
		nonce := r.next(chacha20poly1305.NonceSizeX)
		aadEnd := r.off
		sealed := r.next(seedSize + chacha20poly1305.Overhead)
		if r.bad || r.off != len(body) {
			return zero, fmt.Errorf("%w: bad length", ErrDamagedKeyFile)
		}
		p := KDFParams{Time: binary.BigEndian.Uint32(t), MemoryKiB: binary.BigEndian.Uint32(m), Threads: th[0]}
		if err := checkKDF(p); err != nil {
			return zero, fmt.Errorf("%w: %w", ErrDamagedKeyFile, err)
		}
		if pass == "" {
			return zero, ErrPassphraseRequired
		}
		aead, err := sealKey(pass, salt, p)
		if err != nil {
			return zero, err
		}
		seed, err = aead.Open(nil, nonce, sealed, body[:aadEnd])
		if err != nil {
			return zero, ErrWrongPassphrase
		}
	default:
		return zero, fmt.Errorf("%w: unknown kind %d", ErrDamagedKeyFile, kind)
	}
	defer clear(seed)
	name, err := domain.ParseUsername(rawName)
	if err != nil || name.String() != rawName {
		return zero, fmt.Errorf("%w: stored name is not a valid username", ErrDamagedKeyFile)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	defer clear(priv)
	return domain.NewLocalIdentity(name, priv)
}
