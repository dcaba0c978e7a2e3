package upgrades

import (
	"testing"
	"time"

	"berth.dev/berth/internal/workspace"
)

func TestScheduleOpenAt(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	nightly := workspace.Window{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Start: "02:00", Duration: workspace.Duration{Duration: 3 * time.Hour}, TimeZone: "Europe/Paris"}
	weekend := workspace.Window{Days: []string{"saturday"}, Start: "22:00", Duration: workspace.Duration{Duration: 6 * time.Hour}}
	tests := map[string]struct {
		s    Schedule
		at   time.Time
		open bool
		next time.Time
	}{
		"no windows: always open":                         {nil, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), true, time.Time{}},
		"inside, local time":                              {Schedule{nightly}, time.Date(2026, 12, 8, 3, 0, 0, 0, paris), true, time.Time{}},
		"at the end: closed, next day":                    {Schedule{nightly}, time.Date(2026, 12, 8, 5, 0, 0, 0, paris), false, time.Date(2026, 12, 9, 2, 0, 0, 0, paris)},
		"friday evening waits for monday":                 {Schedule{nightly}, time.Date(2026, 12, 11, 18, 0, 0, 0, paris), false, time.Date(2026, 12, 14, 2, 0, 0, 0, paris)},
		"across midnight":                                 {Schedule{weekend}, time.Date(2026, 12, 13, 1, 0, 0, 0, time.UTC), true, time.Time{}},
		"the earliest of two":                             {Schedule{nightly, weekend}, time.Date(2026, 12, 11, 18, 0, 0, 0, paris), false, time.Date(2026, 12, 12, 22, 0, 0, 0, time.UTC)},
		"after daylight saving starts, still 02:00 local": {Schedule{nightly}, time.Date(2027, 3, 29, 0, 30, 0, 0, paris), false, time.Date(2027, 3, 29, 2, 0, 0, 0, paris)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			open, next := tc.s.OpenAt(tc.at)
			if open != tc.open || !next.Equal(tc.next) {
				t.Errorf("OpenAt(%s) = %v, %s; want %v, %s", tc.at, open, next, tc.open, tc.next)
			}
		})
	}
}
