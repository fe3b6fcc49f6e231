package sink

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParsePeriod(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30d", 30 * 24 * time.Hour, ""},
		{"2w", 14 * 24 * time.Hour, ""},
		{"12h", 12 * time.Hour, ""},
		{"90m", 90 * time.Minute, ""},
		{"0", 0, ""},
		{"", 0, ""},
		{"1.5d", 0, `invalid period "1.5d" (want a whole number of days or weeks such as 30d, or a duration such as 12h)`},
		{"30 days", 0, `invalid period "30 days" (want 30d, 2w, 12h or 90m)`},
		{"200000d", 0, `invalid period "200000d": out of range (at most 106751d)`},
	} {
		got, err := ParsePeriod(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("ParsePeriod(%q) error = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || time.Duration(got) != c.want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for p, want := range map[Period]string{Period(30 * day): "30d", Period(36 * time.Hour): "36h", Period(90 * time.Minute): "90m", Period(1500 * time.Millisecond): "1.5s"} {
		if got := p.String(); got != want {
			t.Errorf("Period(%d).String() = %q, want %q", p, got, want)
		}
	}
	for p, want := range map[Period]string{Period(day): "INTERVAL '1 day'", Period(36 * time.Hour): "INTERVAL '36 hours'", Period(90 * time.Minute): "INTERVAL '90 minutes'", 0: "INTERVAL '0 days'"} {
		if got := p.interval(); got != want {
			t.Errorf("Period(%v).interval() = %q, want %q", p, got, want)
		}
	}
}

func TestStorageConfigYAML(t *testing.T) {
	c := DefaultStorageConfig()
	err := yaml.Unmarshal([]byte(`
default_class: free
classes:
  - name: free
    retention: 30d
  - name: premium
    retention: 2w
    compress_after: 3d
    chunk_interval: 12h
assign:
  - {tenant: acme, class: premium}
  - {tenant: acme, device: lab-1, class: free}
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// A class starts from the standard class's settings: only its name and what it sets differ.
	want := []ClassConfig{
		{Name: "free", ChunkInterval: Period(day), CompressAfter: Period(7 * day), Retention: Period(30 * day)},
		{Name: "premium", ChunkInterval: Period(12 * time.Hour), CompressAfter: Period(3 * day), Retention: Period(14 * day)},
	}
	if len(c.Classes) != 2 || c.Classes[0] != want[0] || c.Classes[1] != want[1] {
		t.Errorf("classes = %+v, want %+v", c.Classes, want)
	}
	k := newClassifier(c)
	for _, tc := range []struct{ tenant, device, class string }{
		{"acme", "lab-2", "premium"}, {"acme", "lab-1", "free"}, {"other", "lab-1", "free"},
	} {
		if got := k.names[k.of(tc.tenant, tc.device)]; got != tc.class {
			t.Errorf("class of %s/%s = %s, want %s", tc.tenant, tc.device, got, tc.class)
		}
	}
}

// Every problem is reported at once, each with its key.
func TestStorageConfigValidate(t *testing.T) {
	c := StorageConfig{
		DefaultClass: "gold",
		Classes: []ClassConfig{
			{Name: "Free", ChunkInterval: Period(day)},
			{Name: "short", ChunkInterval: Period(time.Second), Retention: Period(day)},
			{Name: "late", ChunkInterval: Period(day), CompressAfter: Period(40 * day), Retention: Period(30 * day)},
			{Name: "late", ChunkInterval: Period(day), CompressAfter: -1},
		},
		Assign: []AssignRule{{Class: "short"}, {Tenant: "a", Class: "nope"}, {Tenant: "a", Class: "late"}},
	}
	want := []string{
		`classes[0].name: "Free" must be a lower-case identifier of at most 40 characters`,
		`classes[1].chunk_interval: 1s is below the minimum of 1m`,
		`classes[1].retention: 1d is below the minimum of 3d (the daily aggregates refresh the last days from raw readings)`,
		`classes[2].compress_after: 40d must be shorter than retention 30d (chunks would be dropped before they are compressed)`,
		`classes[3].name: "late" is used twice`,
		`classes[3].compress_after: must not be negative (0 never compresses)`,
		`default_class: "gold" is not one of the classes`,
		`assign[0].tenant: required`,
		`assign[1].class: "nope" is not one of the classes`,
		`assign[2]: tenant "a" device "" is assigned twice`,
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := DefaultStorageConfig().Validate(); err != nil {
		t.Errorf("default storage config: %v", err)
	}
}

// A period that parses prints as a period that parses to the same value.
func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"30d", "2w", "12h", "90m", "1h30m", "0", "", "-1d", "1.5h", "9999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeriod(s)
		if err != nil {
			return
		}
		back, err := ParsePeriod(p.String())
		if err != nil || back != p {
			t.Errorf("ParsePeriod(%q) = %v; its String %q parses to %v, %v", s, p, p.String(), back, err)
		}
	})
}
