package udp

import "bytes"

// Decoders of peer bytes, exported to the fuzz tests of package udp_test.

// DecodeRequest parses a stream header and encodes it again.
func DecodeRequest(b []byte) (index int, size int64, again []byte, err error) {
	r, err := parseRequest(b)
	if err != nil {
		return 0, 0, nil, err
	}
	return r.Index, r.Size, r.marshal(), nil
}

// DecodeAnswer reads a receiver's answer from b.
func DecodeAnswer(b []byte) (code byte, offset int64, err error) {
	code, offset, _, err = readAnswer(bytes.NewReader(b), 0)
	return code, offset, err
}

// SelfSignedCert is the certificate the transport presents for me.
var SelfSignedCert = selfSignedCert
