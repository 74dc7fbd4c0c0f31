package app

// SetRosterLimit lowers the roster's MaxRosterPeers for a test.
func SetRosterLimit(v *VerifyContact, n int) {
	v.roster.mu.Lock()
	defer v.roster.mu.Unlock()
	v.roster.max = n
}
