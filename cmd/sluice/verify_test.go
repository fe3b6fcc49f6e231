package main

import (
	"testing"
	"time"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/transfer"
)

// A difference names its series and bucket, and for a typed reading its type, with the
// figures verify compares for that type.
func TestFormatDifference(t *testing.T) {
	b := time.Date(2025, 1, 3, 4, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		d    transfer.Difference
		by   string
		want string
	}{
		{"number", transfer.Difference{Tenant: "acme", Device: "dev-12", Metric: "temp", Bucket: b,
			From: transfer.Figures{Count: 60, Sum: 30.5, Min: 0.5, Max: 2, Present: true},
			To:   transfer.Figures{Count: 60, Sum: 31, Min: -1, Max: 2, Present: true}}, "hour",
			"acme/dev-12/temp 2025-01-03T04:00Z differs: from count=60 sum=30.5 min=0.5 max=2; to count=60 sum=31 min=-1 max=2"},
		{"text", transfer.Difference{Tenant: "acme", Device: "dev-1", Metric: "state", Bucket: b, Type: sluice.TypeText,
			From: transfer.Figures{Type: sluice.TypeText, Count: 60, Checksum: -12345, Present: true},
			To:   transfer.Figures{Type: sluice.TypeText, Count: 60, Checksum: 778, Present: true}}, "hour",
			"acme/dev-1/state 2025-01-03T04:00Z text differs: from count=60 md5sum=-12345; to count=60 md5sum=778"},
		{"bool missing", transfer.Difference{Tenant: "acme", Device: "dev-2", Metric: "door", Bucket: b, Type: sluice.TypeBool,
			From: transfer.Figures{Type: sluice.TypeBool, Count: 60, Checksum: 20, Present: true}}, "day",
			"acme/dev-2/door 2025-01-03 bool missing in to: from count=60 true=20; to -"},
		{"location", transfer.Difference{Tenant: "acme", Device: "dev-3", Metric: "pos", Bucket: b, Type: sluice.TypeLocation,
			From: transfer.Figures{Type: sluice.TypeLocation, Count: 2, Lat: 94.5, Lon: 17.25, Present: true},
			To:   transfer.Figures{Type: sluice.TypeLocation, Count: 2, Lat: 94.5000001, Lon: 17.25, Present: true}}, "hour",
			"acme/dev-3/pos 2025-01-03T04:00Z location differs: from count=2 lat_sum=94.5 lon_sum=17.25; to count=2 lat_sum=94.5000001 lon_sum=17.25"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := formatDifference(c.d, c.by); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}
