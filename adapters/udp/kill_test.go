package udp_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/udp"
	"github.com/chatx/chatx/adapters/udp/internal/diskfile"
	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
	"github.com/chatx/chatx/ports/contract"
)

// The child sender is this test binary run again with these variables.
const (
	envChild    = "CHATX_UDP_CHILD_SENDER"
	envSeed     = "CHATX_UDP_CHILD_SEED"
	envPeerKey  = "CHATX_UDP_CHILD_PEER_KEY"
	envEndpoint = "CHATX_UDP_CHILD_ENDPOINT"
	envFile     = "CHATX_UDP_CHILD_FILE"
	envID       = "CHATX_UDP_CHILD_TRANSFER"
	envStripes  = "CHATX_UDP_CHILD_STRIPES"
	envTCP      = "CHATX_UDP_CHILD_TCP" // "1": over the TCP file path (SendTCP to 127.0.0.1)
)

// stripedConfig is the transport configuration of both ends for a number
// of stripes (1: none).
func stripedConfig(stripes int) udp.Config {
	return udp.Config{Stripes: stripes, StripeMinSize: 1}
}

// TestChildSender is the sender process of TestSenderKilledResumes; it does
// nothing unless run as that child.
func TestChildSender(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("only run as TestSenderKilledResumes' child process")
	}
	seed, _ := hex.DecodeString(os.Getenv(envSeed))
	me, err := domain.NewLocalIdentity(domain.MustUsername("alice"), ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(os.Getenv(envPeerKey))
	bob, err := domain.NewIdentity(domain.MustUsername("bob"), key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := domain.ParseTransferID(os.Getenv(envID))
	if err != nil {
		t.Fatal(err)
	}
	src, err := diskfile.Open(os.Getenv(envFile))
	if err != nil {
		t.Fatal(err)
	}
	stripes, _ := strconv.Atoi(os.Getenv(envStripes))
	tr := newTransport(t, me, contract.AcceptAll{}, stripedConfig(stripes))
	peer := domain.Peer{Identity: bob, Endpoints: domain.Endpoints{File: []string{os.Getenv(envEndpoint)}}}
	first := true
	var sender ports.FileTransport = tr
	if os.Getenv(envTCP) == "1" {
		sender = tcpPath{tr}
	}
	err = sender.Send(context.Background(), peer, id, 0, src, func(done int64) {
		if first {
			first = false
			fmt.Printf("START %d\n", done)
		}
	})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	fmt.Println("DONE")
}

// startChild runs a sender process and returns it and a channel of its
// START offset.
func startChild(t *testing.T, env []string) (*exec.Cmd, <-chan int64, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildSender$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	starts, done := make(chan int64, 1), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "START "); ok {
				n, _ := strconv.ParseInt(s, 10, 64)
				starts <- n
			}
		}
	}()
	return cmd, starts, done
}

// A sender killed half way resumes at the last whole chunk, with one
// stream and striped over 4 connections (stream version 3: the receiver
// put the stripes' units in order, so its part holds a whole prefix),
// over QUIC and over the TCP file path.
func TestSenderKilledResumes(t *testing.T) {
	if os.Getenv(envChild) == "1" {
		t.Skip("child process")
	}
	for _, tcp := range []bool{false, true} {
		for _, stripes := range []int{1, 4} {
			name := fmt.Sprintf("%d stripes", stripes)
			if tcp {
				name += " over tcp"
			}
			t.Run(name, func(t *testing.T) { senderKilledResumes(t, stripes, tcp) })
		}
	}
}

func senderKilledResumes(t *testing.T, stripes int, tcp bool) {
	const size = 64 << 20
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	alice, err := domain.NewLocalIdentity(domain.MustUsername("alice"), ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	bob := newLocalIdentity(t, "bob")
	var receiver *udp.Transport
	if tcp {
		receiver = newTransportWithTCPFiles(t, bob, onlyKey{alice.Identity}, stripedConfig(stripes))
	} else {
		receiver = newTransport(t, bob, onlyKey{alice.Identity}, stripedConfig(stripes))
	}
	recv := diskfile.New(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- receiver.Serve(ctx, recv) }()
	defer func() { cancel(); <-served }()

	id := domain.NewTransferID()
	path := t.TempDir() + "/half.bin"
	sum, err := diskfile.WriteRandom(path, size, 42)
	if err != nil {
		t.Fatal(err)
	}
	e := recv.Expect(id, 0, "half.bin", sum)
	// Hold the stream once half has landed, until the sender is dead.
	half, killed := make(chan int64, 1), make(chan struct{})
	var once sync.Once
	e.OnWrite(func(n int64) {
		if n >= size/2 {
			once.Do(func() {
				half <- n
				<-killed
			})
		}
	})
	env := []string{envChild + "=1", envSeed + "=" + hex.EncodeToString(seed),
		envPeerKey + "=" + hex.EncodeToString(bob.PublicKey()),
		envEndpoint + "=" + receiver.Endpoints()[0], envFile + "=" + path, envID + "=" + id.String(),
		envStripes + "=" + strconv.Itoa(stripes)}
	if tcp {
		env = append(env, envTCP+"=1")
	}

	first, _, firstDone := startChild(t, env)
	var atKill int64
	select {
	case atKill = <-half:
	case <-time.After(wait):
		_ = first.Process.Kill()
		t.Fatal("the first sender did not reach half way")
	}
	if err := first.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = first.Wait()
	<-firstDone
	close(killed)

	second, starts, secondDone := startChild(t, env)
	var start int64
	select {
	case start = <-starts:
	case <-time.After(wait):
		_ = second.Process.Kill()
		t.Fatal("the second sender did not start")
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second sender: %v", err)
	}
	<-secondDone

	got, err := diskfile.HashFile(recv.Path(e))
	if err != nil || got != sum {
		t.Fatalf("file after resume: hash %x, err %v; want %x", got, err, sum)
	}
	sessions := e.Sessions()
	last := sessions[len(sessions)-1]
	sentAgain := int64(size) - start
	twice := sentAgain - (int64(size) - atKill)
	t.Logf("part at kill %d, resume offset %d, second sender sent %d bytes, sent twice %d (%.1f%%), sessions %d",
		atKill, start, sentAgain, twice, 100*float64(max(twice, 0))/size, len(sessions))
	if last.Offset != start || last.Restarted || last.Written != sentAgain || last.Result != nil {
		t.Fatalf("last session %+v, want a clean resume at %d writing %d bytes", last, start, sentAgain)
	}
	if start < atKill {
		t.Fatalf("resumed at %d, below the %d bytes already there", start, atKill)
	}
	if twice > size/10 {
		t.Fatalf("%d bytes sent twice, more than 10%% of %d", twice, size)
	}
	if _, striped := udp.StripedStreams(receiver); (striped > 0) != (stripes > 1) {
		t.Fatalf("%d of the streams received were striped, with %d stripes configured", striped, stripes)
	}
}

// onlyKey accepts one identity.
type onlyKey struct{ id domain.Identity }

func (o onlyKey) VerifyPeer(_ context.Context, p domain.Identity) error {
	if !o.id.SameKey(p.PublicKey()) {
		return domain.ErrUnknownPeer
	}
	return nil
}
