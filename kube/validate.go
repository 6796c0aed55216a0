package kube

import (
	"fmt"
	"strconv"
	"strings"
)

// Checks of the job flags that become object fields, made before anything
// is printed or applied: the API server would refuse a bad namespace or
// Secret name, and a bad schedule would make a CronJob that never runs.

// CheckNamespace says what rule a namespace name breaks (a DNS-1123
// label), or "".
func CheckNamespace(ns string) string { return validNamespace(ns) }

// validNamespace is a DNS-1123 label (a namespace's name).
func validNamespace(ns string) string {
	if ns == "" || len(ns) > 63 {
		return "want 1 to 63 characters (a DNS label)"
	}
	if !dnsLabel(ns) {
		return "want lower-case letters, digits and inner dashes (a DNS label)"
	}
	return ""
}

func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1) {
			return false
		}
	}
	return true
}

// validSecretName is a DNS-1123 subdomain (a Secret's name).
func validSecretName(n string) string {
	if n == "" || len(n) > 253 {
		return "want 1 to 253 characters (a DNS subdomain)"
	}
	for _, l := range strings.Split(n, ".") {
		if !dnsLabel(l) {
			return "want lower-case letters, digits, inner dashes and dots (a DNS subdomain)"
		}
	}
	return ""
}

// cronField is one field of a schedule: its range and its names.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is min+i
}

var cronFields = []cronField{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// validSchedule checks a CronJob schedule as the CronJob controller reads
// it: five fields (minute hour day-of-month month day-of-week, each a
// comma list of *, N, N-M, with /STEP; names for months and days; ? for a
// day), or a descriptor such as @daily. It says the rule broken, or "".
func validSchedule(s string) string {
	if s != strings.TrimSpace(s) || strings.ContainsAny(s, "\n\r\t") {
		return "no leading or trailing spaces, tabs or line breaks"
	}
	switch s {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return ""
	}
	if strings.HasPrefix(s, "@") {
		return "unknown descriptor (want @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"
	}
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return "no time zone in the schedule (the CronJob's timeZone field holds it)"
	}
	fields := strings.Fields(s)
	if len(fields) != 5 {
		return fmt.Sprintf("want 5 fields (minute hour day-of-month month day-of-week), not %d", len(fields))
	}
	for i, f := range fields {
		if why := cronFields[i].check(f); why != "" {
			return cronFields[i].name + " " + strconv.Quote(f) + ": " + why
		}
	}
	return ""
}

func (c cronField) check(f string) string {
	for _, part := range strings.Split(f, ",") {
		rng, step, hasStep := strings.Cut(part, "/")
		if hasStep {
			n, err := strconv.Atoi(step)
			if err != nil || n < 1 || n > c.max-c.min+1 {
				return fmt.Sprintf("bad step %q", step)
			}
		}
		switch {
		case rng == "*" || rng == "?" && (c.name == "day of month" || c.name == "day of week"):
			continue
		case rng == "":
			return "empty list item"
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		a, ok := c.value(lo)
		if !ok {
			return fmt.Sprintf("%q is not a %s (%d-%d)", lo, c.name, c.min, c.max)
		}
		if isRange {
			b, ok := c.value(hi)
			if !ok {
				return fmt.Sprintf("%q is not a %s (%d-%d)", hi, c.name, c.min, c.max)
			}
			if b < a {
				return fmt.Sprintf("range %s ends before it starts", rng)
			}
		}
	}
	return ""
}

func (c cronField) value(s string) (int, bool) {
	for i, n := range c.names {
		if strings.EqualFold(s, n) {
			return c.min + i, true
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < c.min || n > c.max || strings.HasPrefix(s, "+") {
		return 0, false
	}
	return n, true
}
