package sink

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-iot/sluice"
)

// kind is a row's value type as the writer handles it: an index into kinds.
type kind uint8

const (
	kindNumber kind = iota
	kindText
	kindBool
	kindLocation
)

// kindDef describes how one value type is stored: numbers in measurements_<class> (classtables.go),
// the others each in a table <prefix>_<class> beside them, with the same key (series_id, time).
type kindDef struct {
	typ    sluice.ValueType
	name   string // series.type, and the table prefix of the typed kinds
	cols   string // the value columns' definitions
	insert string // the value columns' names
	stage  string // what the staging table's columns give for them
	view   string // the view over every class
	// viewCols are the view's value columns (m is the table's alias).
	viewCols string
}

var kinds = [...]kindDef{
	kindNumber: {typ: sluice.TypeNumber, name: "number"},
	kindText: {typ: sluice.TypeText, name: "text", cols: "value text NOT NULL",
		insert: "value", stage: "text", view: "readings_text", viewCols: "m.value"},
	kindBool: {typ: sluice.TypeBool, name: "bool", cols: "value boolean NOT NULL",
		insert: "value", stage: "bool", view: "readings_bool", viewCols: "m.value"},
	kindLocation: {typ: sluice.TypeLocation, name: "location",
		cols:   "latitude double precision NOT NULL,\n\tlongitude double precision NOT NULL,\n\taltitude  double precision",
		insert: "latitude, longitude, altitude", stage: "lat, lon, alt", view: "readings_location",
		viewCols: "m.latitude, m.longitude, m.altitude"},
}

// typedKinds are the kinds stored beside numbers.
var typedKinds = []kind{kindText, kindBool, kindLocation}

// kindOf is the kind of a reading's type; ok is false for a type Sluice does not know.
func kindOf(t sluice.ValueType) (kind, bool) {
	for k := range kinds {
		if kinds[k].typ == t {
			return kind(k), true
		}
	}
	return 0, false
}

// kindNamed is the kind of a series.type value.
func kindNamed(name string) (kind, bool) {
	for k := range kinds {
		if kinds[k].name == name {
			return kind(k), true
		}
	}
	return 0, false
}

// typedStageTable is the per-connection temporary table typed rows are copied into; only a
// batch holding typed rows uses it.
const typedStageTable = "sluice_stage_typed"

const createTypedStage = "CREATE TEMP TABLE IF NOT EXISTS " + typedStageTable +
	" (time timestamptz, series_id bigint, class smallint, kind smallint, text text, bool boolean," +
	" lat double precision, lon double precision, alt double precision) ON COMMIT DELETE ROWS"

// typedNames names one typed kind's table of one class.
type typedNames struct {
	schema, class string
	kind          kind
}

func (n typedNames) table() string  { return kinds[n.kind].name + "_" + n.class }
func (n typedNames) qtable() string { return pgx.Identifier{n.schema, n.table()}.Sanitize() }

// relation is a table a TimescaleDB plan reconciles: a class's measurements or typed table.
type relation interface {
	table() string
	qtable() string
}

// createTypedTable returns the statements creating a typed kind's table of a class.
func createTypedTable(n typedNames) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
	time      timestamptz NOT NULL,
	series_id bigint      NOT NULL,
	%[2]s,
	PRIMARY KEY (series_id, time)
);
CREATE INDEX IF NOT EXISTS %[3]s ON %[1]s (time DESC)`, n.qtable(), kinds[n.kind].cols, pgx.Identifier{n.table() + "_time_idx"}.Sanitize())
}

// typedViews returns the statements creating readings_text, readings_bool and
// readings_location over the typed tables of classes (by kind), marked with their fingerprint
// as the comment of readings_text.
func typedViews(schema string, classes map[kind][]string) []step {
	q := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	var steps []step
	for _, k := range typedKinds {
		d := kinds[k]
		cols := "time, series_id, " + d.insert
		from := "SELECT NULL::timestamptz AS time, NULL::bigint AS series_id, " + nullCols(k) + " WHERE false"
		if cs := classes[k]; len(cs) > 0 {
			from = unionAll(cs, cols, func(c string) string { return typedNames{schema, c, k}.qtable() })
		}
		steps = append(steps, step{sql: fmt.Sprintf(`CREATE OR REPLACE VIEW %s AS
	SELECT m.time, s.tenant, s.device, s.metric, %s, s.unit
	FROM (%s) m
	JOIN %s s ON s.id = m.series_id`, q(d.view), d.viewCols, from, q("series"))})
	}
	return append(steps, step{sql: fmt.Sprintf("COMMENT ON VIEW %s IS %s", q("readings_text"), quoteLiteral(viewsMark("typed views", steps)))})
}

// nullCols are typed NULL value columns of kind k, for a view over no table.
func nullCols(k kind) string {
	switch k {
	case kindText:
		return "NULL::text AS value"
	case kindBool:
		return "NULL::boolean AS value"
	}
	return "NULL::float8 AS latitude, NULL::float8 AS longitude, NULL::float8 AS altitude"
}
