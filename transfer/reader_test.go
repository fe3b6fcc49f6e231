package transfer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/pgtest"
)

// The reader returns every row of its range once, in (time, key) order, whatever the data
// does to its windows: many rows at one instant (more than a chunk), gaps of years, rows at
// ±infinity, range bounds that fall between rows.
func TestReaderReturnsEveryRowOnceInOrder(t *testing.T) {
	schema := pgtest.Schema(t)
	pgtest.Exec(t, `CREATE TABLE `+schema+`.h (time timestamptz, tenant text, device text, metric text, value float8);
INSERT INTO `+schema+`.h SELECT '2020-01-01', 't', 'd' || g, 'm', g FROM generate_series(1, 40) g;
INSERT INTO `+schema+`.h SELECT '2020-01-01'::timestamptz + g * interval '1 second', 't', 'd', 'm', g FROM generate_series(1, 30) g;
INSERT INTO `+schema+`.h SELECT '2023-06-01'::timestamptz + g * interval '1 hour', 't', 'd', 'm' || (g % 3), g FROM generate_series(1, 50) g;
INSERT INTO `+schema+`.h VALUES ('infinity', 't', 'd', 'm', 0), ('-infinity', 't', 'd', 'm', 0), ('-infinity', 't', 'a', 'm', 0)`)
	src, err := OpenSource(context.Background(), SourceConfig{URL: pgtest.URL(), Query: "SELECT * FROM " + schema + ".h"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, c := range []struct {
		name string
		r    Range
		want int64
	}{
		{"all", Range{}, 123},
		{"since", Range{Since: time.Date(2020, 1, 1, 0, 0, 10, 0, time.UTC)}, 21 + 50 + 1},
		{"until", Range{Until: time.Date(2023, 6, 1, 10, 0, 0, 0, time.UTC)}, 2 + 40 + 30 + 9},
		{"both", Range{Since: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2020, 1, 1, 0, 0, 1, 0, time.UTC)}, 40},
	} {
		for _, n := range []int{1, 7, 1000} {
			t.Run(fmt.Sprintf("%s/%d", c.name, n), func(t *testing.T) {
				first, last, err := src.span(context.Background(), c.r)
				if err != nil {
					t.Fatal(err)
				}
				rd := newReader(src, c.r, position{first: true}, n, first, last)
				var got int64
				var prev *srcRow
				seen := map[string]bool{}
				for queries := 0; ; queries++ {
					if queries > 1000 {
						t.Fatal("more than 1000 chunks")
					}
					rows, err := rd.next(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if rows == nil {
						break
					}
					for i := range rows {
						x := &rows[i]
						k := fmt.Sprintf("%v/%d/%v", x.time.Time, x.time.InfinityModifier, x.key)
						if seen[k] {
							t.Fatalf("row %s returned twice", k)
						}
						seen[k] = true
						if prev != nil && order(prev, x) >= 0 {
							t.Fatalf("row %s after %v/%v", k, prev.time, prev.key)
						}
						prev = x
						got++
					}
				}
				if got != c.want {
					t.Errorf("rows: got %d, want %d", got, c.want)
				}
			})
		}
	}
}

func order(a, b *srcRow) int {
	ta, tb := int(a.time.InfinityModifier), int(b.time.InfinityModifier)
	if ta != tb {
		return ta - tb
	}
	if c := a.time.Time.Compare(b.time.Time); c != 0 {
		return c
	}
	for i := range a.key {
		if a.key[i] != b.key[i] {
			if a.key[i] < b.key[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
