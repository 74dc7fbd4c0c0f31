package app

import (
	"context"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Contacts lists the people the user added or accepted.
func (c *Client) Contacts(ctx context.Context) ([]domain.Contact, error) {
	return c.contacts.Contacts(ctx)
}

// Requests lists the strangers with held messages or offers.
func (c *Client) Requests(ctx context.Context) ([]ports.RequestView, error) {
	return c.contacts.Requests(ctx)
}

// AcceptRequest makes name a contact; what it sent joins the history.
func (c *Client) AcceptRequest(ctx context.Context, name domain.Username) error {
	if err := c.contacts.Accept(ctx, name); err != nil {
		return err
	}
	c.chore(func(ctx context.Context) { c.tellStatus(ctx, name) })
	return nil
}

// DeclineRequest drops what name sent.
func (c *Client) DeclineRequest(ctx context.Context, name domain.Username) error {
	return c.contacts.Decline(ctx, name)
}

// Block refuses name from now on and drops what it sent.
func (c *Client) Block(ctx context.Context, name domain.Username) error {
	return c.contacts.Block(ctx, name)
}

// Unblock makes a blocked name a stranger again.
func (c *Client) Unblock(ctx context.Context, name domain.Username) error {
	return c.contacts.Unblock(ctx, name)
}

// AddContact makes name a contact, found by its exact name.
func (c *Client) AddContact(ctx context.Context, name domain.Username) error {
	if err := c.contacts.Add(ctx, name); err != nil {
		return err
	}
	c.chore(func(ctx context.Context) { c.tellStatus(ctx, name) })
	return nil
}

// SetNickname sets a local nickname for a pinned name.
func (c *Client) SetNickname(ctx context.Context, name domain.Username, nickname string) error {
	return c.contacts.SetNickname(ctx, name, nickname)
}
