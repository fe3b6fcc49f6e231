package edge

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluice-iot/sluice/sink"
)

// Status is the body of /status and what `sluice status` prints: the buffer's usage against
// its budget and, per target, its lag, rows written and dead letters.
type Status struct {
	Ready   string              `json:"ready"`
	Buffer  sink.BufferStatus   `json:"buffer"`
	Targets []sink.TargetStatus `json:"targets"`
	// Hub is an edge's link to the hub (role edge).
	Hub    *sink.HubStatus   `json:"hub,omitempty"`
	Errors map[string]string `json:"errors,omitempty"`
}

// Status reports the delivery state of the site.
func (s *Site) Status(ctx context.Context) Status {
	st := Status{Ready: s.Ready(ctx).Status, Targets: []sink.TargetStatus{}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var err error
	if st.Buffer, err = s.buffer.Status(ctx); err != nil {
		st.Errors = map[string]string{"buffer": err.Error()}
	}
	st.Hub = s.buffer.Hub(ctx)
	for _, t := range s.targets {
		st.Targets = append(st.Targets, t.Report(ctx))
	}
	return st
}

func (s *Site) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(s.Status(r.Context()))
}
