package registry

import (
	"bufio"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/chatx/chatx/ports"
)

// KnownHostsFile is the trust-on-first-use file under the profile: one
// "host:port sha256-hex" line per registry.
const KnownHostsFile = "registry_known_hosts"

// CertChangedError says the registry presented a certificate other than the
// pinned one: someone may be intercepting the connection.
type CertChangedError struct {
	Host   string
	Pinned string
	Got    string
	Source string // "URL" or the known-hosts file
}

// Is makes the error ports.ErrDirectoryCertChanged for the use-cases.
func (e *CertChangedError) Is(target error) bool { return target == ports.ErrDirectoryCertChanged }

func (e *CertChangedError) Error() string {
	return fmt.Sprintf("REGISTRY CERTIFICATE MISMATCH for %s: pinned sha256=%s (%s), server presented sha256=%s. "+
		"Someone may be intercepting the connection. If the registry's certificate was replaced on purpose, "+
		"update the pin (remove the line for %s from %s, or fix the #sha256= in the registry URL).",
		e.Host, e.Pinned, e.Source, e.Got, e.Host, e.Source)
}

// parseRegistryURL splits the registry URL into its base and the pinned
// fingerprint of the fragment "#sha256=<64 hex digits>" (colons allowed).
func parseRegistryURL(raw RegistryURL) (*url.URL, string, error) {
	u, err := url.Parse(string(raw))
	if err != nil {
		return nil, "", fmt.Errorf("registry URL: %w", err)
	}
	if u.Scheme != "https" {
		return nil, "", fmt.Errorf("registry URL %q: scheme must be https", u.Redacted())
	}
	if u.Host == "" {
		return nil, "", fmt.Errorf("registry URL %q: no host", u.Redacted())
	}
	var pin string
	if f := u.Fragment; f != "" {
		v, ok := strings.CutPrefix(f, "sha256=")
		if !ok {
			return nil, "", fmt.Errorf("registry URL: fragment must be #sha256=<hex fingerprint>")
		}
		v = strings.ToLower(strings.ReplaceAll(v, ":", ""))
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			return nil, "", fmt.Errorf("registry URL: #sha256= wants 64 hex digits")
		}
		pin = v
	}
	u.Fragment, u.RawFragment = "", ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	if u.Port() == "" {
		u.Host += ":443"
	}
	return u, pin, nil
}

// pinner checks the server certificate against the URL's pin or the
// profile's known-hosts file, which it writes on first use.
type pinner struct {
	host string
	pin  string // from the URL; "" for trust on first use
	file string // known-hosts path; "" when there is no profile
	log  *slog.Logger

	mu      sync.Mutex
	learned string // fingerprint accepted in this process
}

func (p *pinner) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The chain is not checked against CAs: the pin replaces it.
		InsecureSkipVerify: true,
		VerifyConnection:   p.verify,
	}
}

func (p *pinner) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("registry presented no certificate")
	}
	got := Fingerprint(cs.PeerCertificates[0].Raw)
	if p.pin != "" {
		if subtle.ConstantTimeCompare([]byte(got), []byte(p.pin)) != 1 {
			err := &CertChangedError{Host: p.host, Pinned: p.pin, Got: got, Source: "URL"}
			p.log.Error(err.Error())
			return err
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.learned == "" {
		known, err := p.lookup()
		if err != nil {
			return err
		}
		if known == "" {
			if err := p.remember(got); err != nil {
				return err
			}
			p.log.Warn("trusting the registry certificate on first use; compare it with the fingerprint the registry printed at start",
				"registry", p.host, "sha256", got)
			known = got
		}
		p.learned = known
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(p.learned)) != 1 {
		err := &CertChangedError{Host: p.host, Pinned: p.learned, Got: got, Source: p.file}
		p.log.Error(err.Error())
		return err
	}
	return nil
}

func (p *pinner) lookup() (string, error) {
	if p.file == "" {
		return "", nil
	}
	f, err := os.Open(p.file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read registry pins: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == p.host {
			return strings.ToLower(fields[1]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read registry pins: %w", err)
	}
	return "", nil
}

func (p *pinner) remember(fp string) error {
	if p.file == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p.file), 0o700); err != nil {
		return fmt.Errorf("save registry pin: %w", err)
	}
	f, err := os.OpenFile(p.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("save registry pin: %w", err)
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", p.host, fp); err != nil {
		f.Close()
		return fmt.Errorf("save registry pin: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save registry pin: %w", err)
	}
	return f.Close()
}
