package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Register is "sign me in under my name": it binds our name to our key at
// the directory (proving we hold the key) and advertises where the message
// link and the file transport listen. The directory keeps us online after.
type Register struct {
	me    domain.LocalIdentity
	dir   ports.Directory
	link  ports.MessageLink
	files ports.FileTransport
}

// RegisterInput is empty: who we are and where we listen are known.
type RegisterInput struct{}

// NewRegister builds the use-case.
func NewRegister(me domain.LocalIdentity, dir ports.Directory, link ports.MessageLink, files ports.FileTransport) (*Register, error) {
	switch {
	case me.IsZero():
		return nil, errNilPort("identity")
	case dir == nil:
		return nil, errNilPort("directory")
	case link == nil:
		return nil, errNilPort("message link")
	case files == nil:
		return nil, errNilPort("file transport")
	}
	return &Register{me: me, dir: dir, link: link, files: files}, nil
}

// Endpoints are the addresses we advertise.
func (r *Register) Endpoints() domain.Endpoints {
	return domain.Endpoints{Link: r.link.Endpoints(), File: r.files.Endpoints()}
}

// Handle registers. domain.ErrNameTaken: another key owns our name.
func (r *Register) Handle(ctx context.Context, _ RegisterInput) error {
	return wrapOnce(r.dir.Register(ctx, r.me, r.Endpoints()), "register "+r.me.Name().String())
}

// Unregister takes us offline.
func (r *Register) Unregister(ctx context.Context) error {
	return wrapOnce(r.dir.Unregister(ctx), "unregister "+r.me.Name().String())
}

// wrapOnce adds what was being done to err, unless err says so already
// (the directory adapters name the action themselves): "register alice:
// register alice: …" tells a person nothing more.
func wrapOnce(err error, doing string) error {
	if err == nil || strings.HasPrefix(err.Error(), doing+":") {
		return err
	}
	return fmt.Errorf("%s: %w", doing, err)
}
