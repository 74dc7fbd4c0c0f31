package storage_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatx/chatx/adapters/storage"
	"github.com/chatx/chatx/domain"
)

func newLocal(t testing.TB, name string) domain.LocalIdentity {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.NewLocalIdentity(domain.MustUsername(name), priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sealedStore(dir string, pass storage.Passphrase) *storage.KeyStore {
	return storage.NewKeyStore(storage.ProfileDir(dir), pass).WithKDF(cheapKDF)
}

func TestKeyStoreSealedAndUnsealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	me := newLocal(t, "alice")
	tests := []struct {
		name     string
		save     storage.Passphrase
		load     storage.Passphrase
		wantErr  error
		isSealed bool
	}{
		{"unsealed", "", "", nil, false},
		{"unsealed, loaded with a passphrase", "", "anything", nil, false},
		{"sealed", "correct horse", "correct horse", nil, true},
		{"sealed, unicode passphrase", "pässwörd 🔑", "pässwörd 🔑", nil, true},
		{"sealed, wrong passphrase", "correct horse", "correct hors", storage.ErrWrongPassphrase, true},
		{"sealed, no passphrase", "correct horse", "", storage.ErrPassphraseRequired, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := sealedStore(dir, tc.save).Save(ctx, me); err != nil {
				t.Fatalf("Save: %v", err)
			}
			path := filepath.Join(dir, storage.KeyFile)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
			}
			data, _ := os.ReadFile(path)
			if hasSeed := bytes.Contains(data, me.PrivateKey().Seed()); hasSeed == tc.isSealed {
				t.Fatalf("private key in the clear in the file: %v, want %v", hasSeed, !tc.isSealed)
			}
			got, err := sealedStore(dir, tc.load).Load(ctx)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Load: %v, want %v", err, tc.wantErr)
				}
				if errors.Is(err, domain.ErrNoIdentity) || errors.Is(err, storage.ErrDamagedKeyFile) {
					t.Fatalf("Load error %v also says no identity or damaged", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !got.PrivateKey().Equal(me.PrivateKey()) || got.Name().String() != "alice" {
				t.Fatal("Load returned another identity")
			}
		})
	}
}

// A passphrase given for a profile whose key file is still plain must not
// leave the key in the clear: Load seals the file with it.
func TestLoadWithPassphraseSealsAPlainFile(t *testing.T) {
	t.Parallel()
	ctx, dir := context.Background(), t.TempDir()
	me := newLocal(t, "alice")
	if err := sealedStore(dir, "").Save(ctx, me); err != nil {
		t.Fatal(err)
	}
	got, err := sealedStore(dir, "correct horse").Load(ctx)
	if err != nil || !got.PrivateKey().Equal(me.PrivateKey()) {
		t.Fatalf("Load of the plain file with a passphrase: %v", err)
	}
	path := filepath.Join(dir, storage.KeyFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, me.PrivateKey().Seed()) {
		t.Fatal("the private key is still in the clear after a Load with a passphrase")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file after sealing: %v, %v", fi, err)
	}
	if _, err := sealedStore(dir, "").Load(ctx); !errors.Is(err, storage.ErrPassphraseRequired) {
		t.Fatalf("Load without the passphrase: %v, want ErrPassphraseRequired", err)
	}
	if again, err := sealedStore(dir, "correct horse").Load(ctx); err != nil || !again.PrivateKey().Equal(me.PrivateKey()) {
		t.Fatalf("Load of the sealed file: %v", err)
	}
}

func TestKeyStoreDefaultKDF(t *testing.T) {
	if testing.Short() {
		t.Skip("Argon2id with 64 MiB is slow under -race")
	}
	t.Parallel()
	ctx, dir := context.Background(), t.TempDir()
	me := newLocal(t, "alice")
	if err := storage.NewKeyStore(storage.ProfileDir(dir), "pass").Save(ctx, me); err != nil {
		t.Fatal(err)
	}
	got, err := storage.NewKeyStore(storage.ProfileDir(dir), "pass").Load(ctx)
	if err != nil || !got.PrivateKey().Equal(me.PrivateKey()) {
		t.Fatalf("Load with default parameters: %v", err)
	}
}

func TestKeyStoreRefusesLoosePermissions(t *testing.T) {
	t.Parallel()
	ctx, dir := context.Background(), t.TempDir()
	ks := storage.NewKeyStore(storage.ProfileDir(dir), "")
	if err := ks.Save(ctx, newLocal(t, "alice")); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o602, 0o666} {
		if err := os.Chmod(ks.Path(), mode); err != nil {
			t.Fatal(err)
		}
		_, err := ks.Load(ctx)
		if !errors.Is(err, storage.ErrInsecurePermissions) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("Load with mode %04o: %v, want ErrInsecurePermissions with advice", mode, err)
		}
	}
	// Saving again repairs the mode.
	if err := ks.Save(ctx, newLocal(t, "alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Load(ctx); err != nil {
		t.Fatalf("Load after Save repaired the mode: %v", err)
	}
}

func TestKeyStoreRefusesSymlink(t *testing.T) {
	t.Parallel()
	ctx, dir, other := context.Background(), t.TempDir(), t.TempDir()
	if err := storage.NewKeyStore(storage.ProfileDir(other), "").Save(ctx, newLocal(t, "mallory")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, storage.KeyFile), filepath.Join(dir, storage.KeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := storage.NewKeyStore(storage.ProfileDir(dir), "").Load(ctx); err == nil {
		t.Fatal("Load followed a symlink")
	}
}

// TestKeyStoreDamagedFile flips every byte of a key file in turn, and cuts
// it at every length: each must be refused as damaged (never loaded as
// another key, never a panic).
func TestKeyStoreDamagedFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, pass := range []storage.Passphrase{"", "secret"} {
		dir := t.TempDir()
		ks := sealedStore(dir, pass)
		if err := ks.Save(ctx, newLocal(t, "alice")); err != nil {
			t.Fatal(err)
		}
		good, err := os.ReadFile(ks.Path())
		if err != nil {
			t.Fatal(err)
		}
		write := func(b []byte) {
			if err := os.WriteFile(ks.Path(), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for i := range good {
			bad := bytes.Clone(good)
			bad[i] ^= 0x01
			write(bad)
			if _, err := ks.Load(ctx); !errors.Is(err, storage.ErrDamagedKeyFile) {
				t.Fatalf("byte %d flipped (sealed %v): %v, want ErrDamagedKeyFile", i, pass != "", err)
			}
		}
		for n := range len(good) {
			write(good[:n])
			if _, err := ks.Load(ctx); !errors.Is(err, storage.ErrDamagedKeyFile) {
				t.Fatalf("cut at %d: %v, want ErrDamagedKeyFile", n, err)
			}
		}
		write(append(bytes.Clone(good), 0))
		if _, err := ks.Load(ctx); !errors.Is(err, storage.ErrDamagedKeyFile) {
			t.Fatalf("trailing byte: %v, want ErrDamagedKeyFile", err)
		}
		write(bytes.Repeat([]byte{'x'}, 100_000))
		if _, err := ks.Load(ctx); !errors.Is(err, storage.ErrDamagedKeyFile) {
			t.Fatalf("huge file: %v, want ErrDamagedKeyFile", err)
		}
	}
}

func TestPassphraseIsNotPrinted(t *testing.T) {
	t.Parallel()
	p := storage.Passphrase("hunter2")
	var b strings.Builder
	for _, s := range []string{p.String(), p.LogValue().String()} {
		b.WriteString(s)
	}
	if strings.Contains(b.String(), "hunter2") {
		t.Fatal("the passphrase shows in String or LogValue")
	}
}

func FuzzKeyFile(f *testing.F) {
	ctx := context.Background()
	for _, pass := range []storage.Passphrase{"", "secret"} {
		dir := f.TempDir()
		ks := sealedStore(dir, pass)
		if err := ks.Save(ctx, newLocal(f, "alice")); err != nil {
			f.Fatal(err)
		}
		good, err := os.ReadFile(ks.Path())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(good)
	}
	f.Add([]byte("CHATXKEY"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, storage.KeyFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		id, err := sealedStore(dir, "secret").Load(ctx)
		if err == nil && (id.Name().IsZero() || len(id.PrivateKey()) != ed25519.PrivateKeySize) {
			t.Fatal("Load accepted a file and returned an incomplete identity")
		}
	})
}
