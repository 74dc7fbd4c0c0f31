package domain_test

import (
	"testing"

	"github.com/chatx/chatx/domain"
)

func TestParseFilePathMode(t *testing.T) {
	for in, want := range map[string]domain.FilePathMode{"": domain.FilePathAuto, "auto": domain.FilePathAuto, "udp": domain.FilePathOnlyUDP, "tcp": domain.FilePathTryTCP} {
		got, err := domain.ParseFilePathMode(in)
		if err != nil || got != want {
			t.Errorf("ParseFilePathMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"quic", "TCP", " udp", "auto,tcp"} {
		if _, err := domain.ParseFilePathMode(bad); err == nil {
			t.Errorf("ParseFilePathMode(%q) accepted", bad)
		}
	}
}

func TestChooseFilePath(t *testing.T) {
	lanTCP := domain.Path{Kind: domain.PathLAN, Transport: domain.TransportTCP, Remote: "192.168.1.5:4000"}
	directTCP := domain.Path{Kind: domain.PathDirect, Transport: domain.TransportTCP, Remote: "203.0.113.7:4000"}
	quic := domain.Path{Kind: domain.PathDirect, Transport: domain.TransportQUIC, Remote: "203.0.113.7:5000"}
	relayed := domain.Path{Kind: domain.PathRelayed, Transport: domain.TransportQUIC, Remote: "198.51.100.1:3478"}
	tests := []struct {
		mode       domain.FilePathMode
		link       domain.Path
		want       domain.FilePath
		wantReason bool
	}{
		{domain.FilePathAuto, lanTCP, domain.FilePathTCP, false},
		{domain.FilePathAuto, directTCP, domain.FilePathTCP, false},
		{domain.FilePathAuto, quic, domain.FilePathUDP, false},
		{domain.FilePathAuto, relayed, domain.FilePathUDP, false},
		{domain.FilePathAuto, domain.Path{}, domain.FilePathUDP, false},
		{domain.FilePathOnlyUDP, lanTCP, domain.FilePathUDP, false},
		{domain.FilePathTryTCP, lanTCP, domain.FilePathTCP, false},
		{domain.FilePathTryTCP, quic, domain.FilePathUDP, true},
		{domain.FilePathTryTCP, relayed, domain.FilePathUDP, true},
		{domain.FilePathTryTCP, domain.Path{}, domain.FilePathUDP, true},
	}
	for _, tc := range tests {
		got, reason := domain.ChooseFilePath(tc.mode, tc.link)
		if got != tc.want || (reason != "") != tc.wantReason {
			t.Errorf("ChooseFilePath(%s, %s) = %q, %q; want %q (reason: %v)", tc.mode, tc.link, got, reason, tc.want, tc.wantReason)
		}
	}
}
