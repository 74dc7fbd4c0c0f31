package turnrest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/chatx/chatx/internal/turnrest"
)

// TestPasswordMatchesCoturn pins the convention with a vector computed
// independently: printf '1700000000:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
func TestPasswordMatchesCoturn(t *testing.T) {
	user, pass := turnrest.Credentials([]byte("s3cret"), "alice", time.Unix(1700000000, 0))
	if user != "1700000000:alice" {
		t.Fatalf("username %q", user)
	}
	if want := "TtElzSjT0GdnTQ9xdcRNxx96yQs="; pass != want {
		t.Fatalf("password %q, want %q", pass, want)
	}
}

func TestParse(t *testing.T) {
	exp, name, err := turnrest.Parse("1700000000:bob:x")
	if err != nil || name != "bob:x" || !exp.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("Parse = %v %q %v", exp, name, err)
	}
	for _, bad := range []string{"", "alice", ":alice", "1700000000:", "-5:alice", "x1:alice"} {
		if _, _, err := turnrest.Parse(bad); !errors.Is(err, turnrest.ErrMalformed) {
			t.Errorf("Parse(%q) err = %v, want ErrMalformed", bad, err)
		}
	}
}

// FuzzParse: the TURN server parses usernames from anyone on the network.
// A parse that succeeds round-trips through Username.
func FuzzParse(f *testing.F) {
	f.Add("1700000000:alice")
	f.Add("1:a:b")
	f.Add(":")
	f.Fuzz(func(t *testing.T, username string) {
		exp, name, err := turnrest.Parse(username)
		if err != nil {
			if !errors.Is(err, turnrest.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if again := turnrest.Username(exp, name); again != username {
			// Leading zeros or a plus sign parse but print differently.
			if e2, n2, err := turnrest.Parse(again); err != nil || !e2.Equal(exp) || n2 != name {
				t.Fatalf("Parse(%q) = %v %q; Username gives %q, which does not parse back", username, exp, name, again)
			}
		}
	})
}
