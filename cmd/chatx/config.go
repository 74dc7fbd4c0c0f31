package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chatx/chatx/domain"
)

// clientFlags are the flags the terminal client, jsonrpc, id and demo share
// (DESIGN.md §5). Environment variables CHATX_PROFILE and CHATX_REGISTRY
// mirror --profile and --registry; flags win.
type clientFlags struct {
	name           string
	profile        string
	registry       string
	downloads      string
	passphraseFile string
	listenTCP      string
	listenUDP      string
	logFile        string
	verbose        bool
	maxIncoming    string
	maxIncomingN   int64
	filePath       string
	filePathMode   domain.FilePathMode
	fileStripes    int  // udp.Config.Stripes: 0 automatic, 1 off
	noBell         bool // terminal client only
	lan            bool
	// acceptFromAnyone: no message requests; strangers are taken as contacts.
	acceptFromAnyone bool
	awayAfter        time.Duration // terminal client only
}

const defaultRegistry = "https://localhost:5000"

// registerIdentity adds the flags that pick and unlock a profile.
func (c *clientFlags) registerIdentity(fs *flag.FlagSet) {
	fs.StringVar(&c.name, "name", "", "username to sign up with on first run (3-32 of a-z 0-9 _ - .)")
	fs.StringVar(&c.profile, "profile", "", "profile `dir` with the identity key, history and settings (env CHATX_PROFILE; default $XDG_CONFIG_HOME/chatx)")
	fs.StringVar(&c.passphraseFile, "passphrase-file", "", "`file` holding the passphrase that seals the identity key (default: key unsealed, mode 0600)")
}

// register adds every flag of a running client.
func (c *clientFlags) register(fs *flag.FlagSet) {
	c.registerIdentity(fs)
	c.registerNetwork(fs)
	fs.StringVar(&c.downloads, "downloads", "", "`dir` received files go to (default $XDG_DOWNLOAD_DIR/chatx or ~/Downloads/chatx)")
	c.registerMaxIncoming(fs)
}

// registerNetwork adds the flags of a client that goes online: registry,
// listeners and logging.
func (c *clientFlags) registerNetwork(fs *flag.FlagSet) {
	fs.StringVar(&c.registry, "registry", "", "registry `URL`, optionally pinned: https://host:5000/#sha256=HEX, or none to run on the LAN alone (env CHATX_REGISTRY; default "+defaultRegistry+")")
	fs.BoolVar(&c.lan, "lan", true, "find peers on the local network by signed multicast announcements, with or without a registry (docs/lan-discovery.md)")
	fs.StringVar(&c.listenTCP, "listen-tcp", ":0", "`addr` of the peer message listener (TCP); :0 lets the OS choose")
	fs.StringVar(&c.listenUDP, "listen-udp", ":0", "`addr` of the file transfer listener (UDP/QUIC; files over TCP+TLS 1.3 arrive on the same port number over TCP); :0 lets the OS choose")
	fs.StringVar(&c.filePath, "file-path", "auto", "`path` of files sent: auto (tcp when the peer's message link runs over direct TCP, else udp), udp (QUIC only) or tcp (TCP+TLS 1.3 when there is a direct TCP link, else udp with the reason logged)")
	fs.IntVar(&c.fileStripes, "file-stripes", 0, "stripe a file of 64 MiB or more over at most `n` connections (QUIC, or TLS on the TCP path), so several cores carry it (0: min(4, CPUs); 1: never; at most 4)")
	fs.StringVar(&c.logFile, "log", "", "write logs to `file` (default: <profile>/chatx.log for the terminal UI, send, receive and msg; stderr otherwise)")
	fs.BoolVar(&c.verbose, "v", false, "verbose (debug) logging")
	fs.BoolVar(&c.acceptFromAnyone, "accept-from-anyone", false, "take messages and file offers from anyone as from a contact (no message requests; --auto-accept then applies to strangers' offers too)")
}

// registerMaxIncoming adds the size limit of accepted offers.
func (c *clientFlags) registerMaxIncoming(fs *flag.FlagSet) {
	fs.StringVar(&c.maxIncoming, "max-incoming", "0", "accepting a file offer larger than `size` fails (e.g. 500MiB, 20GB; 0 = no limit besides free space)")
}

// resolve fills defaults from the environment and XDG directories.
func (c *clientFlags) resolve() error {
	if c.profile == "" {
		c.profile = os.Getenv("CHATX_PROFILE")
	}
	if c.profile == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("no --profile given and no config dir: %w", err)
		}
		c.profile = filepath.Join(dir, "chatx")
	}
	if c.registry == "" {
		c.registry = os.Getenv("CHATX_REGISTRY")
	}
	if c.registry == "" {
		c.registry = defaultRegistry
	}
	if c.downloads == "" {
		c.downloads = defaultDownloads()
	}
	var err error
	if c.maxIncomingN, err = parseSize(c.maxIncoming); err != nil {
		return fmt.Errorf("--max-incoming: %w", err)
	}
	if c.filePathMode, err = domain.ParseFilePathMode(c.filePath); err != nil {
		return fmt.Errorf("--file-path: %w", err)
	}
	if c.fileStripes < 0 || c.fileStripes > 4 {
		return fmt.Errorf("--file-stripes %d: want 0 (automatic) to 4", c.fileStripes)
	}
	if c.profile, err = filepath.Abs(c.profile); err != nil {
		return err
	}
	if c.downloads, err = filepath.Abs(c.downloads); err != nil {
		return err
	}
	return nil
}

func defaultDownloads() string {
	if d := os.Getenv("XDG_DOWNLOAD_DIR"); d != "" {
		return filepath.Join(d, "chatx")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, "Downloads", "chatx")
	}
	return filepath.Join(os.TempDir(), "chatx-downloads")
}

// maxPassphraseBytes bounds the passphrase file.
const maxPassphraseBytes = 4 << 10

// passphrase reads the sealing passphrase, if a file was given. The file
// must be readable by its owner only and hold at most 4 KiB.
func (c *clientFlags) passphrase() (string, error) {
	if c.passphraseFile == "" {
		return "", nil
	}
	f, err := os.Open(c.passphraseFile)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("passphrase file %s is not a regular file", c.passphraseFile)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("passphrase file %s is readable by others (mode %o): chmod 600 it", c.passphraseFile, info.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPassphraseBytes+1))
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	if len(b) > maxPassphraseBytes {
		return "", fmt.Errorf("passphrase file %s is longer than %d bytes", c.passphraseFile, maxPassphraseBytes)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", errors.New("the passphrase file is empty")
	}
	return p, nil
}

// newFlagSet makes a flag set whose -help prints a usage line and the flags.
func newFlagSet(name, usage, about string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s\n\n%s\n\nFlags:\n", usage, about)
		fs.PrintDefaults()
	}
	return fs
}

// parseSize reads a byte count with an optional unit: B, KB/MB/GB/TB
// (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(strings.ToLower(s), strings.ToLower(u.suffix)) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || n*float64(mult) > float64(1<<62) {
		return 0, fmt.Errorf("%q is not a size like 500MiB or 2GB", s)
	}
	return int64(n * float64(mult)), nil
}
