package pgtest

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Grafana is what Grafana's PostgreSQL data source substitutes in a panel's query before
// running it: the dashboard's time range, the panel's interval and the template variables.
type Grafana struct {
	From, To time.Time
	Interval time.Duration     // $__interval (and $__interval_ms)
	Vars     map[string]string // $name and ${name}, the value as Grafana writes it (unquoted)
}

var (
	timeFilterMacro = regexp.MustCompile(`\$__timeFilter\(([^)]+)\)`)
	timeGroupMacro  = regexp.MustCompile(`\$__timeGroup(?:Alias)?\(([^,]+),\s*([^)]+)\)`)
	templateVar     = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)
)

// Expand returns q with every macro and variable replaced as Grafana does, or an error naming
// a macro or variable it does not know, so that a dashboard using one cannot pass untested.
func (g Grafana) Expand(q string) (string, error) {
	ts := func(t time.Time) string { return "'" + t.UTC().Format(time.RFC3339) + "'" }
	q = timeFilterMacro.ReplaceAllString(q, "$1 BETWEEN "+ts(g.From)+" AND "+ts(g.To))
	q = timeGroupMacro.ReplaceAllStringFunc(q, func(m string) string {
		sub := timeGroupMacro.FindStringSubmatch(m)
		return fmt.Sprintf("to_timestamp(floor(extract(epoch FROM %s) / %d) * %d)", sub[1], int(g.Interval.Seconds()), int(g.Interval.Seconds()))
	})
	q = strings.NewReplacer(
		"$__timeFrom()", ts(g.From), "$__timeTo()", ts(g.To),
		"$__unixEpochFrom()", fmt.Sprint(g.From.Unix()), "$__unixEpochTo()", fmt.Sprint(g.To.Unix()),
		"$__interval_ms", fmt.Sprint(g.Interval.Milliseconds()),
		"$__interval", intervalText(g.Interval),
	).Replace(q)
	var unknown []string
	q = templateVar.ReplaceAllStringFunc(q, func(m string) string {
		sub := templateVar.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		if v, ok := g.Vars[name]; ok {
			return v
		}
		if strings.Trim(name, "0123456789") == "" {
			return m // $1: a parameter or a regular expression's group, not Grafana's
		}
		unknown = append(unknown, m)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana macros or variables %v in:\n%s", unknown, q)
	}
	return q, nil
}

// intervalText writes d as Grafana writes $__interval: 1h, 30m, 15s, 500ms.
func intervalText(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}
