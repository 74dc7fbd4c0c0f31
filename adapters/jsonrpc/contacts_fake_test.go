package jsonrpc_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// contactsFake records the ports.ContactsClient calls of a fakeClient and
// answers from what the test put in it.
type contactsFake struct {
	cmu      sync.Mutex
	cCalls   []string // "Method arg…"
	requests []ports.RequestView
	contacts []domain.Contact
	status   domain.Status
	cErr     error
}

func (f *contactsFake) crecord(format string, args ...any) error {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.cCalls = append(f.cCalls, fmt.Sprintf(format, args...))
	return f.cErr
}

// contactCalls returns the calls recorded so far.
func (f *contactsFake) contactCalls() []string {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return append([]string(nil), f.cCalls...)
}

func (f *contactsFake) Contacts(context.Context) ([]domain.Contact, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return append([]domain.Contact(nil), f.contacts...), nil
}

func (f *contactsFake) Requests(context.Context) ([]ports.RequestView, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return append([]ports.RequestView(nil), f.requests...), nil
}

// dropRequest removes name's request, as accept, decline and block do.
func (f *contactsFake) dropRequest(name domain.Username) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	kept := f.requests[:0]
	for _, r := range f.requests {
		if !r.Request.From.Name().Equal(name) {
			kept = append(kept, r)
		}
	}
	f.requests = kept
}

func (f *contactsFake) AcceptRequest(_ context.Context, name domain.Username) error {
	f.dropRequest(name)
	return f.crecord("AcceptRequest %s", name)
}

func (f *contactsFake) DeclineRequest(_ context.Context, name domain.Username) error {
	f.dropRequest(name)
	return f.crecord("DeclineRequest %s", name)
}

func (f *contactsFake) Block(_ context.Context, name domain.Username) error {
	f.dropRequest(name)
	return f.crecord("Block %s", name)
}

func (f *contactsFake) Unblock(_ context.Context, name domain.Username) error {
	return f.crecord("Unblock %s", name)
}

func (f *contactsFake) AddContact(_ context.Context, name domain.Username) error {
	return f.crecord("AddContact %s", name)
}

func (f *contactsFake) SetNickname(_ context.Context, name domain.Username, nick string) error {
	return f.crecord("SetNickname %s %s", name, nick)
}

func (f *contactsFake) SetStatus(_ context.Context, s domain.Status) error {
	if _, err := domain.NewStatus(s.Availability, s.Text); err != nil {
		return err
	}
	f.cmu.Lock()
	f.status = s
	f.cmu.Unlock()
	return f.crecord("SetStatus %s %s", s.Availability, s.Text)
}

func (f *contactsFake) Status() domain.Status {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return f.status
}
