// Package contactsfake is a recording fake of ports.ContactsClient shared
// by the tests of the user-interface adapters. Only tests import it.
package contactsfake

import (
	"context"
	"fmt"
	"sync"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

var _ ports.ContactsClient = (*Recorder)(nil)

// Recorder records the ports.ContactsClient calls of a fake ports.Client and
// answers from what the test put in it (SetRequests, SetContacts,
// FailContacts). Embed it in a fake ports.Client.
type Recorder struct {
	cmu      sync.Mutex
	cCalls   []string // "Method arg…"
	requests []ports.RequestView
	contacts []domain.Contact
	status   domain.Status
	cErr     error
}

func (f *Recorder) crecord(format string, args ...any) error {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.cCalls = append(f.cCalls, fmt.Sprintf(format, args...))
	return f.cErr
}

// ContactCalls returns the calls recorded so far ("Method arg…").
func (f *Recorder) ContactCalls() []string {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return append([]string(nil), f.cCalls...)
}

// SetRequests sets what Requests answers.
func (f *Recorder) SetRequests(rs ...ports.RequestView) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.requests = append([]ports.RequestView(nil), rs...)
}

// SetContacts sets what Contacts answers.
func (f *Recorder) SetContacts(cs ...domain.Contact) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.contacts = append([]domain.Contact(nil), cs...)
}

// FailContacts makes every later recorded call return err.
func (f *Recorder) FailContacts(err error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	f.cErr = err
}

func (f *Recorder) Contacts(context.Context) ([]domain.Contact, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return append([]domain.Contact(nil), f.contacts...), nil
}

func (f *Recorder) Requests(context.Context) ([]ports.RequestView, error) {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return append([]ports.RequestView(nil), f.requests...), nil
}

// dropRequest removes name's request, as accept, decline and block do.
func (f *Recorder) dropRequest(name domain.Username) {
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

func (f *Recorder) AcceptRequest(_ context.Context, name domain.Username) error {
	f.dropRequest(name)
	return f.crecord("AcceptRequest %s", name)
}

func (f *Recorder) DeclineRequest(_ context.Context, name domain.Username) error {
	f.dropRequest(name)
	return f.crecord("DeclineRequest %s", name)
}

func (f *Recorder) Block(_ context.Context, name domain.Username) error {
	f.dropRequest(name)
	return f.crecord("Block %s", name)
}

func (f *Recorder) Unblock(_ context.Context, name domain.Username) error {
	return f.crecord("Unblock %s", name)
}

func (f *Recorder) AddContact(_ context.Context, name domain.Username) error {
	return f.crecord("AddContact %s", name)
}

func (f *Recorder) SetNickname(_ context.Context, name domain.Username, nick string) error {
	return f.crecord("SetNickname %s %s", name, nick)
}

func (f *Recorder) SetStatus(_ context.Context, s domain.Status) error {
	if _, err := domain.NewStatus(s.Availability, s.Text); err != nil {
		return err
	}
	f.cmu.Lock()
	f.status = s
	f.cmu.Unlock()
	return f.crecord("SetStatus %s %s", s.Availability, s.Text)
}

func (f *Recorder) Status() domain.Status {
	f.cmu.Lock()
	defer f.cmu.Unlock()
	return f.status
}
