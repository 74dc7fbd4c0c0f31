package jsonrpc

import (
	"encoding/json"
	"reflect"
	"testing"
)

// decodeSendParams reads exactly what decodeParams reads, and refuses
// exactly what it refuses, whether or not its one-pass path takes the
// params.
func FuzzSendParamsAsDecodeParams(f *testing.F) {
	for _, s := range []string{
		`{"to":"bob","text":"hi"}`,
		` { "text" : "hello there" , "to" : "bob" } `,
		`{"group":"g1","text":"x"}`,
		`{"to":"bob","text":"caf\u00e9"}`,
		`{"to":"bob","text":"a \"quoted\" word"}`,
		`{"to":"bob","to":"carol","text":"x"}`,
		`{"TO":"bob","Text":"x"}`,
		`{"to":"bob","text":"hi","colour":"red"}`,
		`{"to":null,"text":"x"}`,
		`{"to":5,"text":"x"}`,
		`{}`, `null`, `["bob","hi"]`, `"bob"`,
		"{\"to\":\"bob\",\"text\":\"\xff\"}",
		"{\"to\":\"bob\",\"text\":\"tab\there\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // params come out of a parsed request: valid JSON
		}
		var fast, slow sendParams
		errFast := decodeSendParams(raw, &fast)
		errSlow := decodeParams(raw, &slow)
		if (errFast == nil) != (errSlow == nil) || errFast != nil && errFast.Error() != errSlow.Error() {
			t.Fatalf("%q: error %v, decodeParams %v", raw, errFast, errSlow)
		}
		if errFast == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: read %s, decodeParams %s", raw, show(fast), show(slow))
		}
	})
}

// The one-pass path takes the params a script writes.
func TestPlainSendParams(t *testing.T) {
	var p sendParams
	if !plainSendParams([]byte(` {"to": "bob", "text": "r0 m1 benchmark message"} `), &p) {
		t.Fatal("plain send params not read in one pass")
	}
	if p.To == nil || *p.To != "bob" || p.Text == nil || *p.Text != "r0 m1 benchmark message" || p.Group != nil {
		t.Fatalf("read %s", show(p))
	}
}

func show(p sendParams) string {
	b, _ := json.Marshal(p)
	return string(b)
}
