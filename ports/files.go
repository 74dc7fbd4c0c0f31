package ports

import (
	"context"
	"errors"
	"io"

	"github.com/chatx/chatx/domain"
)

// Errors of file transports.
var (
	// ErrTransferRefused: the receiver refused the stream (unknown,
	// declined or cancelled transfer, or the part file could not be opened).
	ErrTransferRefused = errors.New("the receiver refused the transfer")
	// ErrIntegrity: the received file's hash does not match the offer.
	ErrIntegrity = errors.New("file hash does not match the offer")
)

// FileSource is one local file being sent.
type FileSource interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// FileTransport moves the bytes of accepted transfers between two
// authenticated identities (QUIC over UDP, or memory). Offers, consent and
// cancellation travel as envelopes on the MessageLink; this port only streams.
type FileTransport interface {
	// Send streams file number index of transfer id to the peer, hashing
	// src as it reads it (domain.FileHasher, with the chunk hash the two
	// ends agree on per stream) and sending that hash after the last byte. The receiver first says how many bytes it already has
	// and their prefix hash; Send checks them against src and sends only
	// the rest (or all of it when they differ). progress is called with the
	// bytes of this file at the receiver so far, at most every 100 ms and
	// at the end. Send returns nil only after the receiver verified the
	// file against the sender's hash and gave it its final name.
	// Errors: ErrTransferRefused, ErrIntegrity, domain.ErrPeerOffline,
	// *domain.KeyChangedError, ctx's error (the stream is cancelled at both ends), or a
	// transport error (the link was lost: the transfer can resume).
	Send(ctx context.Context, to domain.Peer, id domain.TransferID, index int, src FileSource, progress func(done int64)) error

	// Serve accepts streams until ctx is done and hands each to r. It
	// returns nil when ctx is cancelled.
	Serve(ctx context.Context, r FileReceiver) error

	// Endpoints are the addresses this transport listens on, to advertise.
	Endpoints() []string

	// Diagnostics: the transport owns the UDP socket, so it knows the NAT,
	// our candidates and how connection attempts went.
	Diagnostics
}

// FileReceiver is the use-case side of an incoming stream.
type FileReceiver interface {
	// Incoming returns where file index of transfer id from the peer goes,
	// or an error (wrapped in ErrTransferRefused by the transport) when the
	// transfer is unknown, not accepted, or from another peer. path is the
	// carrier the stream rides (domain.FilePathUDP or FilePathTCP;
	// FilePathNone from a transport without one, such as memory's). alg is
	// the chunk hash the stream's format names (docs/file-protocol.md
	// §5.0): the IncomingFile's PrefixHash, its hash of what it writes and
	// the SourceHash it is given all use it.
	Incoming(ctx context.Context, from domain.Identity, id domain.TransferID, index int, path domain.FilePath, alg domain.FileHashAlg) (IncomingFile, error)
}

// IncomingFile is one file being received.
type IncomingFile interface {
	// Offset is how many bytes are already there (a resumed .part file,
	// cut to domain.ResumeOffset) and PrefixHash their hash
	// (domain.FileHasher over those bytes, under Incoming's alg).
	Offset() int64
	PrefixHash() [32]byte
	// SourceHash is the sender's hash of the whole file (domain.FileHasher,
	// under Incoming's alg), which arrives after the last byte and before
	// Finish(nil).
	SourceHash(sum [32]byte)
	// Restart drops what was there: the sender's first bytes differ.
	Restart() error
	// Write appends the next bytes.
	io.Writer
	// Finish ends the file. With err == nil it flushes, checks the whole
	// file's hash against SourceHash's (and the offer's, when the offer
	// carried one: that one is always the chunked SHA-256) and gives the
	// file its final name, returning ErrIntegrity when a hash differs or
	// none came. With err != nil (link lost, cancelled) the
	// .part file is kept for a resume. It is called exactly once.
	Finish(err error) error
}

// CommittedFile is an IncomingFile the receiver verified and gave its
// final name already (the sender did not hear it): the transport tells the
// sender so, streams nothing, and calls Finish(nil).
type CommittedFile interface {
	IncomingFile
	Committed() bool
}

// LocalFiles reads what the user sends.
type LocalFiles interface {
	// Scan describes path for an offer: a regular file is one entry whose
	// Path is its base name; a folder gives every regular file below it
	// (symbolic links are not followed), paths relative to the folder and
	// slash-separated. Hash fields are left zero: files are hashed while
	// they are sent, so an offer goes out without reading them.
	Scan(ctx context.Context, path string) (name string, files []domain.FileEntry, err error)
	// Open opens one file named by Scan: rel is "" for a single file.
	Open(path, rel string) (FileSource, error)
}

// Downloads is the folder received files land in.
type Downloads interface {
	// OpenPart opens, creating it if needed, the partial file for one file
	// of a transfer at relative path rel (already a safe path) under the
	// downloads folder. An existing part is kept so the transfer resumes.
	// Nothing may be created outside the folder (no symlink can lead out).
	OpenPart(id domain.TransferID, rel string) (PartFile, error)
	// RemovePart deletes a transfer's part file, if any.
	RemovePart(id domain.TransferID, rel string) error
	// Available is the free space of the folder's file system in bytes.
	Available() (int64, error)
}

// PartFile is a partial download.
type PartFile interface {
	io.Writer
	io.ReaderAt
	// Size is the number of bytes in the part now.
	Size() (int64, error)
	// Truncate cuts the part to n bytes and writes from there on.
	Truncate(n int64) error
	// Commit flushes the part to disk and gives it its final name at rel,
	// never overwriting an existing file ("name (1).ext"); it returns the
	// relative name it used. The part file is closed after.
	Commit() (string, error)
	// Close closes the part, keeping it for a resume.
	Close() error
}

// TCPFiles is implemented by a FileTransport that can also stream a file
// over TCP + TLS 1.3 (docs/file-protocol.md, "The TCP file stream") to a
// peer whose message link runs over direct TCP: the app chooses the path
// of each file (domain.ChooseFilePath) and shows it.
type TCPFiles interface {
	// SendTCP is Send over a TLS 1.3 connection to host (the host the
	// direct TCP message link reaches) at the port of the peer's file
	// endpoints — a large file over several, striped. The same errors as Send; a transport error (no listener,
	// a dial or handshake failure, a lost connection) lets the caller go
	// on over Send, which resumes what arrived.
	SendTCP(ctx context.Context, to domain.Peer, host string, id domain.TransferID, index int, src FileSource, progress func(done int64)) error
}

// FileWarmer is a FileTransport that can ready the way to a peer before
// the first stream: the app calls it as an offer leaves, so that the
// connection (for QUIC: its handshake, a punched hole) is up when the
// answer comes and the first byte need not wait for it.
type FileWarmer interface {
	// Warm connects to the peer unless a connection is up. Its error is
	// only informative: Send meets the same trouble again.
	Warm(ctx context.Context, to domain.Peer) error
}
