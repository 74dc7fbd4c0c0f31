package system_test

import (
	"testing"
	"time"

	"github.com/chatx/chatx/adapters/system"
)

func TestClockFollowsWallTime(t *testing.T) {
	before := time.Now()
	got := system.NewClock().Now()
	after := time.Now()
	if got.Before(before) || got.After(after) {
		t.Fatalf("Now() = %v, not between %v and %v", got, before, after)
	}
}
