package registry

import "testing"

func TestConnCaps(t *testing.T) {
	for _, tc := range []struct {
		maxConns        int
		fdLimit         uint64
		wantHard, wantS int
	}{
		{20_000, 64, 40, 35},             // ulimit -n 64: room for the reserve
		{20_000, 12_000, 11_744, 11_488}, // the fan-out benchmark's 10,000 watchers fit
		{20_000, 1 << 20, 20_000, 19_744},
		{20_000, 0, 20_000, 19_744}, // limit unknown
		{100, 1 << 20, 100, 88},
	} {
		hard, shed := connCaps(tc.maxConns, tc.fdLimit)
		if hard != tc.wantHard || shed != tc.wantS {
			t.Errorf("connCaps(%d, %d) = %d, %d; want %d, %d", tc.maxConns, tc.fdLimit, hard, shed, tc.wantHard, tc.wantS)
		}
	}
}
