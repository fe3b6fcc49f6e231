package sink

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice"
)

// batch is the messages of one write and the rows they hold, each row remembering its message
// so that a refused row can be recorded with where it came from.
type batch struct {
	msgs []jetstream.Msg
	ids  []string // uplink id per message ("" when unreadable)
	rows []row
	from []int // index into msgs per row
	inv  inventory
	// invStored is set once a write committed inv, so that the parts of an isolated batch
	// after it do not count the batch's devices again.
	invStored bool
	// progress is when JetStream last heard that the batch is being written (keepBatch).
	progress time.Time
}

func (b *batch) reset() {
	b.msgs, b.ids, b.rows, b.from = b.msgs[:0], b.ids[:0], b.rows[:0], b.from[:0]
	b.inv.reset()
	b.invStored = false
}

// add appends msg and the valid readings of u, its content (err when it could not be read).
// It returns the dead letters of what it could not take: the whole message when it could not
// be read, else each invalid reading.
func (b *batch) add(msg jetstream.Msg, u *sluice.Uplink, err error, limits RowLimits, now time.Time) []*sluice.DeadLetter {
	i := len(b.msgs)
	b.msgs = append(b.msgs, msg)
	if err != nil {
		b.ids = append(b.ids, "")
		return []*sluice.DeadLetter{{Data: msg.Data(), Error: err.Error()}}
	}
	b.ids = append(b.ids, u.ID)
	b.inv.note(u)
	var dls []*sluice.DeadLetter
	for k := range u.Readings {
		r := &u.Readings[k]
		if why := limits.check(u, r, now); why != "" {
			dls = append(dls, &sluice.DeadLetter{UplinkID: u.ID, Tenant: u.Tenant, Device: u.Device, Row: r, Error: why})
			continue
		}
		k, _ := kindOf(r.Type) // check refused the types it does not know
		b.rows = append(b.rows, row{key: seriesKey{u.Tenant, u.Device, r.Metric}, unit: r.Unit, time: r.Time, value: r.Value,
			text: r.Text, loc: r.Location, kind: k})
		b.from = append(b.from, i)
	}
	return dls
}

// rowLetter is the dead letter of row k, refused by the database.
func (b *batch) rowLetter(k int) (jetstream.Msg, *sluice.DeadLetter) {
	r := b.rows[k]
	return b.msgs[b.from[k]], &sluice.DeadLetter{
		UplinkID: b.ids[b.from[k]], Tenant: r.key.tenant, Device: r.key.device,
		Row: &sluice.Reading{Metric: r.key.metric, Type: kinds[r.kind].typ, Value: r.value, Text: r.text, Location: r.loc, Unit: r.unit, Time: r.time},
	}
}
