package app

import "github.com/chatx/chatx/ports"

// NewSearchHistoryOver is NewSearchHistory with the overlay a Client gives
// it: the states send published and has not yet committed.
func NewSearchHistoryOver(store ports.MessageStore, send *SendMessage) (*SearchHistory, error) {
	h, err := NewSearchHistory(store)
	if err != nil {
		return nil, err
	}
	h.overlay = send.overlayShown
	return h, nil
}
