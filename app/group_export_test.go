package app

import "github.com/chatx/chatx/domain"

// EncodeGroupLog is the KindGroupLog payload of entries, for tests that
// play a member who forges one.
func EncodeGroupLog(group domain.GroupID, entries []domain.GroupEntry) ([]byte, error) {
	return encodeGroupLog(group, entries)
}

// SetMemberCheck sets what the fan-out asks before writing a copy: whether
// name is still a member of group (the Client asks its group book).
func SetMemberCheck(f *PairwiseFanout, member func(group domain.GroupID, name domain.Username) bool) {
	f.outbox.member = member
}
