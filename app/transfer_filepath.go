package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// FilePath is the --file-path choice (the zero value is auto).
type FilePath = domain.FilePathMode

// filePaths chooses, for each file sent, the path its bytes ride: TCP
// beside a direct TCP message link when the file transport offers it
// (ports.TCPFiles) and the mode allows it, else QUIC over UDP.
type filePaths struct {
	mode FilePath
	tcp  ports.TCPFiles // nil: the transport streams over UDP only
	link ports.PathReporter
}

func newFilePaths(mode FilePath, files ports.FileTransport, link ports.PathReporter) filePaths {
	tcp, _ := files.(ports.TCPFiles)
	return filePaths{mode: mode, tcp: tcp, link: link}
}

// choose returns the path for a file to peer and, for TCP, the host to
// dial. A tcp mode that cannot be met is logged with its reason.
func (p filePaths) choose(peer domain.Peer, log *slog.Logger) (domain.FilePath, string) {
	link := p.link.Path(peer.Identity)
	path, reason := domain.ChooseFilePath(p.mode, link)
	host := ""
	if path == domain.FilePathTCP {
		h, _, err := net.SplitHostPort(link.Remote)
		switch {
		case p.tcp == nil:
			path, reason = domain.FilePathUDP, "the file transport has no TCP path"
		case err != nil:
			path, reason = domain.FilePathUDP, "the message link's remote address is not host:port"
		default:
			host = h
		}
	}
	if reason != "" && p.mode == domain.FilePathTryTCP {
		log.Info("file path tcp not available: sending over udp", "reason", reason)
	}
	return path, host
}

// fallsBack reports whether a failed TCP send should go on over UDP: a
// transport failure, not a verdict of the receiver, a changed key or our
// own cancellation.
func fallsBack(ctx context.Context, err error) bool {
	var kc *domain.KeyChangedError
	return ctx.Err() == nil && !errors.As(err, &kc) &&
		!errors.Is(err, ports.ErrTransferRefused) && !errors.Is(err, ports.ErrIntegrity)
}

// sendOver streams one file over the path chosen for it, recording the
// path on the transfer (shown in the transfer row and in JSON-RPC).
func (h *TransferFile) sendOver(ctx context.Context, peer domain.Peer, id domain.TransferID, i int, src ports.FileSource, progress func(int64)) error {
	log := slog.With("peer", peer.Name().String(), "transfer", id.Short(), "file", i)
	path, host := h.paths.choose(peer, log)
	h.recordPath(ctx, id, path)
	if path == domain.FilePathTCP {
		err := h.paths.tcp.SendTCP(ctx, peer, host, id, i, src, progress)
		if err == nil || !fallsBack(ctx, err) {
			return err
		}
		log.Info("file path tcp failed: going on over udp", "err", err)
		h.recordPath(ctx, id, domain.FilePathUDP)
	}
	return h.files.Send(ctx, peer, id, i, src, progress)
}

// errSamePath leaves a transfer unstored when its path did not change.
var errSamePath = errors.New("same file path")

func (h *TransferFile) recordPath(ctx context.Context, id domain.TransferID, p domain.FilePath) {
	_, _ = h.book.updateSoon(ctx, id, func(t *domain.Transfer, _ time.Time) error {
		if t.FilePath() == p {
			return errSamePath
		}
		*t = t.WithFilePath(p)
		return nil
	})
}
