package app

import "github.com/chatx/chatx/domain"

// EncodeGroupLog is the KindGroupLog payload of entries, for tests that
// play a member who forges one.
func EncodeGroupLog(group domain.GroupID, entries []domain.GroupEntry) ([]byte, error) {
	return encodeGroupLog(group, entries)
}
