package tcp

import (
	"net"
	"testing"
	"time"
)

func TestSendRoomSeesAnIdleSocketAndAFullOne(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	peer := <-accepted // never reads: what nc writes stays queued
	defer peer.Close()

	room := sendRoom(nc)
	if room == nil {
		t.Fatal("no room check for a TCP socket")
	}
	if !room(512) {
		t.Fatal("an idle socket has no room for 512 bytes")
	}
	if room(1 << 30) {
		t.Fatal("room for 1 GiB")
	}
	// Write until a write blocks: the socket is full.
	nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	chunk := make([]byte, 64<<10)
	for {
		if _, err := nc.Write(chunk); err != nil {
			break
		}
	}
	if room(512) {
		t.Fatal("room on a socket whose writes block")
	}

	if sendRoom(&net.UnixConn{}) != nil {
		t.Fatal("a room check for a socket that is not TCP")
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if sendRoom(a) != nil {
		t.Fatal("a room check for a pipe")
	}
}
