package udp

import (
	"errors"
	"fmt"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// The file hash of a stream is negotiated by the REQUEST's version byte
// (docs/file-protocol.md §9): versions 2 and 3 hash chunks with SHA-256,
// 4 and 5 — the same layouts — with BLAKE3. A receiver that does not know
// 4 or 5 answers UNSUPPORTED, as it does to any version it does not know,
// and the sender asks again with 2 or 3 at once (nothing was written).
// Whoever speaks 4 speaks 5 (it may grant one stripe), so an UNSUPPORTED
// to either means "no BLAKE3", never "no striping".

// wireVersion is the version byte of a request of layout (protocolVersion
// or protocolStriped) hashing with alg.
func wireVersion(layout byte, alg domain.FileHashAlg) byte {
	if alg == domain.FileHashBLAKE3 {
		switch layout {
		case protocolVersion:
			return protocolBLAKE3
		case protocolStriped:
			return protocolStripedBLAKE3
		}
	}
	return layout
}

// splitVersion is wireVersion backwards: ok false for a version we do not
// speak.
func splitVersion(v byte) (layout byte, alg domain.FileHashAlg, ok bool) {
	switch v {
	case protocolVersion, protocolStriped:
		return v, domain.FileHashSHA256, true
	case protocolBLAKE3:
		return protocolVersion, domain.FileHashBLAKE3, true
	case protocolStripedBLAKE3:
		return protocolStriped, domain.FileHashBLAKE3, true
	}
	return 0, 0, false
}

// alg is the request's chunk hash; a request built without one is SHA-256.
func (r request) alg() domain.FileHashAlg {
	if r.Hash == 0 {
		return domain.FileHashSHA256
	}
	return r.Hash
}

// speaks reports whether we answer a REQUEST whose first byte is v (tests
// make us an older peer: Transport.onlyVersions).
func (t *Transport) speaks(v byte) bool {
	if _, _, ok := splitVersion(v); !ok {
		return false
	}
	if t.onlyVersions == nil {
		return true
	}
	for _, w := range t.onlyVersions {
		if w == v {
			return true
		}
	}
	return false
}

// unsupportedError: the receiver answered UNSUPPORTED to this version.
type unsupportedError struct{ version byte }

func (e *unsupportedError) Error() string {
	return fmt.Sprintf("%v: the receiver does not speak file protocol %d", ports.ErrTransferRefused, e.version)
}
func (e *unsupportedError) Unwrap() error { return ports.ErrTransferRefused }

// fallBack is the request to send when the receiver answered req's
// version UNSUPPORTED, and whether there is one: BLAKE3 falls back to the
// same layout with SHA-256, then striping (3) to version 2.
func fallBack(req request, err error) (request, bool) {
	var u *unsupportedError
	if !errors.As(err, &u) {
		return req, false
	}
	switch {
	case req.alg() == domain.FileHashBLAKE3:
		req.Hash = domain.FileHashSHA256
	case req.Version == protocolStriped:
		req.Version, req.Stripes = protocolVersion, 0
	default:
		return req, false
	}
	return req, true
}

// tcpSHA256For is how long TCP files to a peer that answered a BLAKE3
// REQUEST UNSUPPORTED go with SHA-256 without asking again (each TCP file
// stream is a new connection, so nothing else tells when the peer was
// updated; on QUIC the connection carries it, pconn.sha256Only).
const tcpSHA256For = 10 * time.Minute
