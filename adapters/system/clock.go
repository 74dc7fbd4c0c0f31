package system

import (
	"time"

	"github.com/google/wire"

	"github.com/chatx/chatx/ports"
)

// Clock is the wall clock.
type Clock struct{}

var _ ports.Clock = Clock{}

// NewClock returns the wall clock.
func NewClock() Clock { return Clock{} }

// Now is time.Now.
func (Clock) Now() time.Time { return time.Now() }

// ProviderSet provides the wall clock as ports.Clock.
var ProviderSet = wire.NewSet(NewClock, wire.Bind(new(ports.Clock), new(Clock)))
