package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chatx/chatx/domain"
	"github.com/chatx/chatx/ports"
)

// Bounds of history queries.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 10000
	maxQueryBytes       = 1024
)

// SearchHistory is "show me what we said" and "find where someone said X".
type SearchHistory struct {
	store ports.MessageStore
	// overlay, if set, corrects what the store returns with the states
	// published and not yet committed (SendMessage.overlayShown).
	overlay func([]domain.Message)
}

// SearchHistoryInput is a conversation (With) or a query, and how many
// messages at most (0: a default of 100; capped at 10,000).
type SearchHistoryInput struct {
	With   domain.Username
	Before time.Time
	Query  string
	Limit  int
}

// NewSearchHistory builds the use-case.
func NewSearchHistory(store ports.MessageStore) (*SearchHistory, error) {
	if store == nil {
		return nil, errNilPort("message store")
	}
	return &SearchHistory{store: store}, nil
}

func limitOf(n int) int {
	switch {
	case n <= 0:
		return defaultHistoryLimit
	case n > maxHistoryLimit:
		return maxHistoryLimit
	}
	return n
}

// History returns the last messages with in.With (before in.Before if set),
// oldest first.
func (s *SearchHistory) History(ctx context.Context, in SearchHistoryInput) ([]domain.Message, error) {
	if in.With.IsZero() {
		return nil, fmt.Errorf("%w: history needs a peer", domain.ErrInvalidUsername)
	}
	ms, err := s.store.History(ctx, in.With, in.Before, limitOf(in.Limit))
	if err != nil {
		return nil, fmt.Errorf("history with %s: %w", in.With, err)
	}
	if s.overlay != nil {
		s.overlay(ms)
	}
	return ms, nil
}

// Search returns messages containing every word of in.Query, newest first.
func (s *SearchHistory) Search(ctx context.Context, in SearchHistoryInput) ([]domain.Message, error) {
	q := strings.TrimSpace(in.Query)
	if q == "" {
		return nil, nil
	}
	if len(q) > maxQueryBytes {
		return nil, fmt.Errorf("search: %w: query of %d bytes", domain.ErrTooLarge, len(q))
	}
	ms, err := s.store.Search(ctx, q, limitOf(in.Limit))
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if s.overlay != nil {
		s.overlay(ms)
	}
	return ms, nil
}
