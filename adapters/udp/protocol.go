package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/quic-go/quic-go"

	"github.com/chatx/chatx/domain"
)

// Wire format of one file stream (docs/file-protocol.md). All integers are
// big-endian.

// protocolVersion is the first byte of every request. Version 2: files
// are hashed while they are sent (domain.FileHasher, the hash follows the
// last byte), resumes start at a chunk boundary, and COMPLETE answers a
// file the receiver has already.
const protocolVersion = 2

// protocolStriped (version 3) is version 2 with the file's data striped
// over several streams on several connections (stripe.go): the REQUEST
// asks for stripes, READY grants them, START says how many are used.
const protocolStriped = 3

// Versions 4 and 5 are versions 2 and 3 byte for byte, with every hash of
// the stream (prefix, TRAILER) chunked with BLAKE3 instead of SHA-256
// (domain.FileHashBLAKE3): request.Version keeps the layout (2 or 3) and
// request.Hash the algorithm; only the wire byte combines them
// (hashver.go).
const (
	protocolBLAKE3        = 4
	protocolStripedBLAKE3 = 5
)

// requestSize: version(1) | transfer id(16) | file index(4) | size(8).
const requestSize = 1 + 16 + 4 + 8

// requestSizeStriped: a version-2 request | stripes(1) | session(8).
const requestSizeStriped = requestSize + 1 + 8

// Answer codes (receiver → sender, first byte of the answer).
const (
	answerReady       byte = 0 // followed by offset(8) | prefix hash(32)
	answerRefused     byte = 1 // the use-case refused the file
	answerUnsupported byte = 2 // unknown protocol version
	answerBusy        byte = 3 // too many incoming transfers
	answerInvalid     byte = 4 // the request was malformed
	answerComplete    byte = 5 // the receiver verified and committed this file already
)

const readyRestSize = 8 + 32

// trailerSize: the sender's hash of the whole file, after its last byte.
const trailerSize = 32

// Start decisions (sender → receiver): decision(1) | start offset(8).
const (
	startResume  byte = 0 // continue at the receiver's offset
	startRestart byte = 1 // the prefix differs: start again at 0
)

const startSize = 1 + 8

// Report frames (receiver → sender, after the start decision).
const (
	frameProgress byte = 1 // followed by bytes at the receiver (8)
	frameFinal    byte = 2 // followed by a status (1), then the stream ends
)

// Final statuses.
const (
	statusOK        byte = 0 // verified and given its final name
	statusIntegrity byte = 1 // the whole file's hash differs from the offer
	statusFailed    byte = 2 // the receiver could not store the file
)

// Stream error codes (RESET_STREAM / STOP_SENDING).
const (
	codeCancelled  quic.StreamErrorCode = 0x10 // this side's user or use-case cancelled
	codeRefused    quic.StreamErrorCode = 0x11 // the receiver gives the file up
	codeProtocol   quic.StreamErrorCode = 0x12 // the peer broke the protocol
	codeShutdown   quic.StreamErrorCode = 0x13 // the transport is shutting down
	codeSuperseded quic.StreamErrorCode = 0x14 // a newer stream took this file over
	codeStalled    quic.StreamErrorCode = 0x15 // the peer was silent too long
)

// Connection error codes (CONNECTION_CLOSE).
const (
	connClosed      quic.ApplicationErrorCode = 0x0 // normal close
	connPeerRefused quic.ApplicationErrorCode = 0x1 // the verifier refused the client's identity
	connTooMany     quic.ApplicationErrorCode = 0x2 // too many connections
	connTooManyFrom quic.ApplicationErrorCode = 0x3 // too many connections from this identity
)

// request is the header of a file stream.
type request struct {
	Version byte               // the layout: protocolVersion or protocolStriped
	Hash    domain.FileHashAlg // the stream's chunk hash (zero: SHA-256)
	ID      domain.TransferID
	Index   int
	Size    int64
	// Version 3 only: the stripes the sender asks for (2..maxStripes) and
	// the session its JOIN streams name.
	Stripes int
	Session stripeSession
}

func (r request) marshal() []byte {
	n := requestSize
	if r.Version == protocolStriped {
		n = requestSizeStriped
	}
	b := make([]byte, n)
	b[0] = wireVersion(r.Version, r.Hash)
	copy(b[1:17], r.ID[:])
	binary.BigEndian.PutUint32(b[17:21], uint32(r.Index))
	binary.BigEndian.PutUint64(b[21:29], uint64(r.Size))
	if r.Version == protocolStriped {
		b[29] = byte(r.Stripes)
		copy(b[30:], r.Session[:])
	}
	return b
}

// parseRequest decodes a header. A wrong version is reported with
// errUnsupported (the receiver checks that byte before reading the rest).
func parseRequest(b []byte) (request, error) {
	if len(b) == 0 {
		return request{}, errors.New("empty request")
	}
	var r request
	var ok bool
	if r.Version, r.Hash, ok = splitVersion(b[0]); !ok {
		return r, errUnsupported
	}
	want := requestSize
	if r.Version == protocolStriped {
		want = requestSizeStriped
	}
	if len(b) != want {
		return request{}, fmt.Errorf("request of %d bytes, want %d", len(b), want)
	}
	copy(r.ID[:], b[1:17])
	idx := binary.BigEndian.Uint32(b[17:21])
	if idx >= domain.MaxTransferFiles {
		return r, fmt.Errorf("file index %d (at most %d)", idx, domain.MaxTransferFiles-1)
	}
	size := binary.BigEndian.Uint64(b[21:29])
	if size > domain.MaxFileSize {
		return r, fmt.Errorf("file size %d (at most %d)", size, int64(domain.MaxFileSize))
	}
	r.Index, r.Size = int(idx), int64(size)
	if r.Version == protocolStriped {
		r.Stripes = int(b[29])
		if r.Stripes < 2 || r.Stripes > maxStripes {
			return r, fmt.Errorf("%d stripes asked (2..%d)", r.Stripes, maxStripes)
		}
		copy(r.Session[:], b[30:])
	}
	return r, nil
}

var errUnsupported = errors.New("unsupported file protocol version")

// readAnswer reads the receiver's answer to a version-2 request. It
// returns the code, and for answerReady the offset and prefix hash.
func readAnswer(r io.Reader, size int64) (code byte, offset int64, prefix [32]byte, err error) {
	var c [1]byte
	if _, err := io.ReadFull(r, c[:]); err != nil {
		return 0, 0, prefix, err
	}
	if c[0] != answerReady {
		return c[0], 0, prefix, nil
	}
	var rest [readyRestSize]byte
	if _, err := io.ReadFull(r, rest[:]); err != nil {
		return 0, 0, prefix, err
	}
	off := binary.BigEndian.Uint64(rest[:8])
	if off > domain.MaxFileSize || (int64(off) < size && off%domain.HashChunkSize != 0) {
		return 0, 0, prefix, fmt.Errorf("%w: receiver offset %d (size %d)", errProtocol, off, size)
	}
	copy(prefix[:], rest[8:])
	return answerReady, int64(off), prefix, nil
}

// marshalReady is READY; stripes > 0 (version 3) appends the stripes
// granted.
func marshalReady(offset int64, prefix [32]byte, stripes int) []byte {
	b := make([]byte, 1+readyRestSize, 2+readyRestSize)
	b[0] = answerReady
	binary.BigEndian.PutUint64(b[1:9], uint64(offset))
	copy(b[9:], prefix[:])
	if stripes > 0 {
		b = append(b, byte(stripes))
	}
	return b
}

// marshalStart is START; stripes > 0 (version 3) appends the stripes used.
func marshalStart(decision byte, start int64, stripes int) []byte {
	b := make([]byte, startSize, startSize+1)
	b[0] = decision
	binary.BigEndian.PutUint64(b[1:], uint64(start))
	if stripes > 0 {
		b = append(b, byte(stripes))
	}
	return b
}

func parseStart(b []byte, offset, size int64) (decision byte, start int64, err error) {
	decision, start = b[0], int64(binary.BigEndian.Uint64(b[1:9]))
	switch {
	case decision == startResume && start == offset && offset <= size:
	case decision == startRestart && start == 0:
	default:
		return 0, 0, fmt.Errorf("%w: start decision %d at %d (offset %d, size %d)", errProtocol, decision, start, offset, size)
	}
	return decision, start, nil
}

func marshalProgress(done int64) []byte {
	b := make([]byte, 9)
	b[0] = frameProgress
	binary.BigEndian.PutUint64(b[1:], uint64(done))
	return b
}

var errProtocol = errors.New("file protocol violation")
