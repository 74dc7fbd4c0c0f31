package domain_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/chatx/chatx/domain"
)

// The v2 signing bytes are exactly the layout of docs/registry-api.md §4,
// so a second implementation can check itself against this example.
func TestRegistryProofSigningBytesV2(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0x01}, ed25519.PublicKeySize)
	ch := bytes.Repeat([]byte{0x02}, domain.ChallengeSize)
	p := domain.RegistryProof{Action: domain.ActionRegister, Name: domain.MustUsername("Alice"), Key: key, Challenge: ch,
		Endpoints: domain.Endpoints{Link: []string{"10.0.0.1:7000"}, File: []string{"[::1]:7001"}}}
	want := strings.Join([]string{
		hex.EncodeToString([]byte("chatx-registry-v2")),
		"00000008" + hex.EncodeToString([]byte("register")),
		"00000005" + hex.EncodeToString([]byte("alice")),
		"00000020" + strings.Repeat("01", 32),
		"00000020" + strings.Repeat("02", 32),
		"00000002",
		"00000004" + hex.EncodeToString([]byte("host")) + "00000003" + hex.EncodeToString([]byte("tcp")) + "0000000d" + hex.EncodeToString([]byte("10.0.0.1:7000")),
		"00000004" + hex.EncodeToString([]byte("host")) + "00000003" + hex.EncodeToString([]byte("udp")) + "0000000a" + hex.EncodeToString([]byte("[::1]:7001")),
	}, "")
	if got := hex.EncodeToString(p.SigningBytes()); got != want {
		t.Fatalf("v2 signing bytes\n got %s\nwant %s", got, want)
	}
	wantV1 := strings.Join([]string{
		hex.EncodeToString([]byte("chatx-registry-v1")),
		"00000008" + hex.EncodeToString([]byte("register")),
		"00000005" + hex.EncodeToString([]byte("alice")),
		"00000020" + strings.Repeat("01", 32),
		"00000020" + strings.Repeat("02", 32),
		"00000001" + "0000000d" + hex.EncodeToString([]byte("10.0.0.1:7000")),
		"00000001" + "0000000a" + hex.EncodeToString([]byte("[::1]:7001")),
	}, "")
	if got := hex.EncodeToString(p.SigningBytesV1()); got != wantV1 {
		t.Fatalf("v1 signing bytes\n got %s\nwant %s", got, wantV1)
	}
	// A link endpoint is not interchangeable with a file endpoint under v2.
	moved := p
	moved.Endpoints = domain.Endpoints{File: []string{"10.0.0.1:7000", "[::1]:7001"}}
	if bytes.Equal(moved.SigningBytes(), p.SigningBytes()) {
		t.Fatal("moving a link endpoint to the file list keeps the signed bytes")
	}
}
