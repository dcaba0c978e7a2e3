package upgrades

import (
	"time"

	"berth.dev/berth/internal/workspace"
)

// Schedule is a set of maintenance windows. An empty schedule is always open.
type Schedule []workspace.Window

// OpenAt reports whether t is inside one of the windows, and otherwise when
// the next one opens (the zero time when none ever does).
func (s Schedule) OpenAt(t time.Time) (open bool, next time.Time) {
	if len(s) == 0 {
		return true, time.Time{}
	}
	for _, w := range s {
		o, n := windowAt(w, t)
		if o {
			return true, time.Time{}
		}
		if !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return false, next
}

// windowAt looks at the occurrences of w from a week before t to a week
// after: one that holds t opens it, otherwise the first one after t is next.
// Occurrences are computed in the window's time zone, so a window keeps its
// local start time across daylight-saving changes.
func windowAt(w workspace.Window, t time.Time) (bool, time.Time) {
	loc, err := time.LoadLocation(w.TimeZone)
	if err != nil {
		return false, time.Time{} // the loader refuses it; never open
	}
	start, ok := workspace.ParseClock(w.Start)
	if !ok || w.Duration.Duration <= 0 {
		return false, time.Time{}
	}
	days := map[time.Weekday]bool{}
	for _, d := range w.Days {
		if wd, ok := workspace.Weekday(d); ok {
			days[wd] = true
		}
	}
	local := t.In(loc)
	var next time.Time
	for off := -8; off <= 8; off++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+off, start/60, start%60, 0, 0, loc)
		if len(days) > 0 && !days[day.Weekday()] {
			continue
		}
		end := day.Add(w.Duration.Duration)
		if !t.Before(day) && t.Before(end) {
			return true, time.Time{}
		}
		if day.After(t) && (next.IsZero() || day.Before(next)) {
			next = day
		}
	}
	return false, next
}
