package udp_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// hashPair is a sender and a served receiver, either of which may be an
// older peer that knows stream versions 2 and 3 only (SHA-256).
func hashPair(t *testing.T, cfg udp.Config, oldSender, oldReceiver bool) (sender, receiver *udp.Transport, peer domain.Peer, recv *contract.RecordingReceiver) {
	t.Helper()
	alice, bob := newLocalIdentity(t, "alice"), newLocalIdentity(t, "bob")
	sender = newTransport(t, alice, contract.AcceptAll{}, cfg)
	receiver = newTransportWithTCPFiles(t, bob, contract.AcceptAll{}, cfg)
	if oldSender {
		udp.SpeakOnlySHA256(sender)
	}
	if oldReceiver {
		udp.SpeakOnlySHA256(receiver)
	}
	recv = contract.NewRecordingReceiver(alice.Identity)
	serveUntilCleanup(t, receiver, recv)
	return sender, receiver, peerOf(bob.Identity, receiver), recv
}

// Every pairing of old and new peers, on QUIC and on TCP, striped and
// not, ends with the file verified, hashed with BLAKE3 only when both
// sides speak it; bytes that differ from the offer still fail.
func TestFileHashIsNegotiatedWithOlderPeers(t *testing.T) {
	type send func(s *udp.Transport, peer domain.Peer, id domain.TransferID, index int, src ports.FileSource) error
	quicSend := func(s *udp.Transport, peer domain.Peer, id domain.TransferID, index int, src ports.FileSource) error {
		return s.Send(context.Background(), peer, id, index, src, nil)
	}
	tcpSend := func(s *udp.Transport, peer domain.Peer, id domain.TransferID, index int, src ports.FileSource) error {
		return s.SendTCP(context.Background(), peer, "127.0.0.1", id, index, src, nil)
	}
	for _, tc := range []struct {
		name                   string
		oldSender, oldReceiver bool
		want                   domain.FileHashAlg
	}{
		{"new to new", false, false, domain.FileHashBLAKE3},
		{"new to old", false, true, domain.FileHashSHA256},
		{"old to new", true, false, domain.FileHashSHA256},
		{"old to old", true, true, domain.FileHashSHA256},
	} {
		for _, path := range []struct {
			name    string
			striped bool
			send    send
		}{{"quic", false, quicSend}, {"quic striped", true, quicSend}, {"tcp", false, tcpSend}, {"tcp striped", true, tcpSend}} {
			t.Run(tc.name+" over "+path.name, func(t *testing.T) {
				cfg := udp.Config{Stripes: 1}
				if path.striped {
					cfg = udp.Config{Stripes: 2, StripeMinSize: 1}
				}
				sender, _, peer, recv := hashPair(t, cfg, tc.oldSender, tc.oldReceiver)
				// Two files: the second goes straight to the format the first found.
				for i := range 2 {
					content := randomBytes(t, 2*domain.HashChunkSize+1+i)
					id := domain.NewTransferID()
					f := recv.Add(id, 0, content, nil)
					if err := path.send(sender, peer, id, 0, contract.NewMemorySource(content)); err != nil {
						t.Fatalf("file %d: Send: %v", i, err)
					}
					f.WaitFinished(t)
					if err := f.FinishErr(); err != nil || !bytes.Equal(f.Data(), content) {
						t.Fatalf("file %d: Finish(%v), %d bytes of %d", i, err, len(f.Data()), len(content))
					}
					if got := recv.Hash(); got != tc.want {
						t.Fatalf("file %d hashed with %v, want %v", i, got, tc.want)
					}
				}
				if sent, _ := udp.StripedStreams(sender); path.striped && sent != 2 {
					t.Fatalf("%d of 2 files striped: falling back from BLAKE3 must keep striping", sent)
				}
				// The offer differs from the bytes sent: integrity fails.
				content := randomBytes(t, domain.HashChunkSize+7)
				id := domain.NewTransferID()
				recv.Add(id, 0, append([]byte{content[0] ^ 1}, content[1:]...), nil)
				if err := path.send(sender, peer, id, 0, contract.NewMemorySource(content)); !errors.Is(err, ports.ErrIntegrity) {
					t.Fatalf("a file that differs from the offer: Send = %v, want ErrIntegrity", err)
				}
			})
		}
	}
}

// A part begun by a stream of one algorithm is resumed by a stream of the
// other: the receiver hashes its part with the new stream's algorithm, the
// sender its source (never a state kept under the other one), the
// prefixes match and only the rest is sent.
func TestPartResumesAcrossTheFileHash(t *testing.T) {
	for _, tc := range []struct {
		name             string
		firstOld, second bool // whether the receiver of each attempt is an old peer
	}{
		{"sha256 then blake3", true, false},
		{"blake3 then sha256", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alice := newLocalIdentity(t, "alice")
			sender := newTransport(t, alice, contract.AcceptAll{}, udp.Config{Stripes: 1})
			content := randomBytes(t, 6*domain.HashChunkSize+99)
			id := domain.NewTransferID()
			attempt := func(old bool, prefix []byte, failAfter int64) (*contract.RecordingFile, *contract.RecordingReceiver, error) {
				bob := newLocalIdentity(t, "bob")
				receiver := newTransport(t, bob, contract.AcceptAll{}, udp.Config{})
				if old {
					udp.SpeakOnlySHA256(receiver)
				}
				recv := contract.NewRecordingReceiver(alice.Identity)
				f := recv.Add(id, 0, content, prefix)
				f.FailAfter(failAfter)
				serveUntilCleanup(t, receiver, recv)
				err := sender.Send(context.Background(), peerOf(bob.Identity, receiver), id, 0, contract.NewMemorySource(content), nil)
				f.WaitFinished(t)
				return f, recv, err
			}
			// The first receiver gives up after two chunks and a bit.
			first, _, err := attempt(tc.firstOld, nil, 2*domain.HashChunkSize+5000)
			if err == nil {
				t.Fatal("the first attempt succeeded although the receiver failed")
			}
			part := first.Data()
			if len(part) < 2*domain.HashChunkSize {
				t.Fatalf("the first attempt left %d bytes", len(part))
			}
			second, recv, err := attempt(tc.second, part, 0)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if want := map[bool]domain.FileHashAlg{true: domain.FileHashSHA256, false: domain.FileHashBLAKE3}[tc.second]; recv.Hash() != want {
				t.Fatalf("resumed with %v, want %v", recv.Hash(), want)
			}
			if second.Restarted() {
				t.Fatal("the part was dropped: the prefix hashes of the two ends differ")
			}
			resumedAt := domain.ResumeOffset(int64(len(part)), int64(len(content)))
			if got := second.Written(); got != int64(len(content))-resumedAt {
				t.Fatalf("%d bytes sent on resume, want the %d after offset %d", got, int64(len(content))-resumedAt, resumedAt)
			}
			if err := second.FinishErr(); err != nil || !bytes.Equal(second.Data(), content) {
				t.Fatalf("Finish(%v), file identical: %v", err, bytes.Equal(second.Data(), content))
			}
		})
	}
}
