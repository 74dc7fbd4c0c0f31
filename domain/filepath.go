package domain

import "fmt"

// FilePath is the path a file's bytes ride (docs/file-protocol.md): a
// QUIC stream over UDP, the path of the original design and the only one
// through punched NATs and relays, or a TLS 1.3 stream over TCP beside a
// direct TCP message link.
type FilePath string

// File paths; "" means not chosen (the transfer is not moving).
const (
	FilePathNone FilePath = ""
	FilePathUDP  FilePath = "udp"
	FilePathTCP  FilePath = "tcp"
)

// FilePathMode is the user's choice of file path (--file-path).
type FilePathMode string

// File path modes; the zero value is auto.
const (
	FilePathAuto     FilePathMode = "auto"
	FilePathOnlyUDP  FilePathMode = "udp"
	FilePathTryTCP   FilePathMode = "tcp"
	filePathModeZero FilePathMode = ""
)

// ParseFilePathMode reads "auto", "udp" or "tcp" ("" is auto).
func ParseFilePathMode(s string) (FilePathMode, error) {
	switch m := FilePathMode(s); m {
	case filePathModeZero, FilePathAuto:
		return FilePathAuto, nil
	case FilePathOnlyUDP, FilePathTryTCP:
		return m, nil
	}
	return "", fmt.Errorf("file path %q: want auto, udp or tcp", s)
}

// ChooseFilePath picks the path of one file to a peer whose message link
// runs on link. TCP needs a direct TCP link (LAN or direct, never relayed);
// auto and tcp take it then, udp never. reason says why TCP was not taken
// when mode asked for it ("" otherwise).
func ChooseFilePath(mode FilePathMode, link Path) (path FilePath, reason string) {
	if mode == FilePathOnlyUDP {
		return FilePathUDP, ""
	}
	switch {
	case link.IsZero():
		reason = "no message link to the peer"
	case link.Transport != TransportTCP:
		reason = fmt.Sprintf("the message link runs over %s, not TCP", link.Transport)
	case link.Kind != PathLAN && link.Kind != PathDirect:
		reason = fmt.Sprintf("the message link is %s, not direct", link.Kind)
	case link.Remote == "":
		reason = "the message link has no remote address"
	default:
		return FilePathTCP, ""
	}
	if mode == FilePathTryTCP {
		return FilePathUDP, reason
	}
	return FilePathUDP, ""
}
