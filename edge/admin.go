package edge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-iot/sluice"
	"github.com/sluice-iot/sluice/sink"
)

// Readiness is the body of /readyz.
type Readiness struct {
	// Status is "ready", "degraded" (ingest works, but a sink cannot reach its database and
	// readings are buffered, or the buffer has 10 % of its budget or less left, or a
	// TimescaleDB job of a target failed or is overdue) or "unavailable" (ingest cannot
	// store). Buffer is "ok", "near_full", "full" or "unavailable".
	Status string            `json:"status"`
	Broker string            `json:"broker"`
	Buffer string            `json:"buffer"`
	Sinks  map[string]string `json:"sinks"`
	Errors map[string]string `json:"errors,omitempty"`
	// Jobs names each failing TimescaleDB job with why, "<target>: job <id> (<kind> of
	// <relation>) failed: <reason>", as the last check found it.
	Jobs []string `json:"jobs,omitempty"`
	// Hub is an edge's link to the hub, "ok" or "disconnected" (the site ingests and buffers
	// meanwhile: degraded); absent in the other roles. Broker is "none" in role worker.
	Hub string `json:"hub,omitempty"`
}

// Ready reports the site's readiness.
func (s *Site) Ready(ctx context.Context) Readiness {
	r := Readiness{Status: "ready", Broker: "ok", Buffer: "ok", Sinks: map[string]string{}, Errors: map[string]string{}}
	switch {
	case s.cfg.Role == sink.RoleWorker:
		r.Broker = "none"
	case !s.brokerUp.Load():
		r.Broker, r.Status = "down", "unavailable"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	switch err := s.buffer.Check(ctx); {
	case err == nil:
	case errors.Is(err, sink.ErrNearFull): // still taking writes
		r.Buffer, r.Errors["buffer"] = "near_full", err.Error()
		if r.Status == "ready" {
			r.Status = "degraded"
		}
	case errors.Is(err, sluice.ErrBufferFull):
		r.Buffer, r.Status, r.Errors["buffer"] = "full", "unavailable", err.Error()
	default:
		r.Buffer, r.Status, r.Errors["buffer"] = "unavailable", "unavailable", err.Error()
	}
	if h := s.buffer.Hub(ctx); h != nil { // role edge (fleet.go)
		r.Hub = "ok"
		if !h.Connected {
			r.Hub, r.Errors["hub"] = "disconnected", "no leafnode link to the hub: readings are buffered at the site"
		} else if h.Error != "" {
			r.Hub, r.Errors["hub"] = "error", h.Error
		}
		if r.Hub != "ok" && r.Status == "ready" {
			r.Status = "degraded"
		}
	}
	for _, t := range s.targets {
		state, err := t.Status()
		r.Sinks[t.Name()] = state
		if err != nil {
			r.Errors["sink."+t.Name()] = err.Error()
		}
		if state != "ok" && r.Status == "ready" {
			r.Status = "degraded"
		}
		for _, j := range t.FailingJobs() {
			r.Jobs = append(r.Jobs, t.Name()+": "+j.Name()+" "+j.State+": "+j.Reason)
			if r.Status == "ready" {
				r.Status = "degraded"
			}
		}
	}
	return r
}

func (s *Site) adminHandler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ready := s.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if ready.Status == "unavailable" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(ready)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", s.serveStatus)
	return mux
}
