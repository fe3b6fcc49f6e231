package sink

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heldSites is what a worker has received from the hub stream of each site: the highest
// sequence at the site, from the Nats-Stream-Source header of the messages its targets
// committed. The hub sources a site in order, so the hub holds everything of the site up to
// there (or had it, before its own retention). The worker moves each site's hub consumer
// (HubConsumer) there, and the site reclaims only below it.
type heldSites struct {
	mu   sync.Mutex
	seen map[string]uint64 // site → highest sequence received
	sent map[string]uint64 // site → what the site was last told
}

// noteHeld records the sites' sequences of msgs, committed by a target. It does nothing
// unless the role is worker; safe for concurrent use.
func (b *Buffer) noteHeld(msgs []jetstream.Msg) {
	if b.cfg.Role != RoleWorker {
		return
	}
	h := &b.held
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range msgs {
		hdr := m.Headers()
		site := hdr.Get(SiteHeader)
		if site == "" {
			continue
		}
		seq, ok := sourceSeq(hdr.Get("Nats-Stream-Source"))
		if !ok {
			continue
		}
		if h.seen == nil {
			h.seen, h.sent = map[string]uint64{}, map[string]uint64{}
		}
		h.seen[site] = max(h.seen[site], seq)
	}
}

// sourceSeq is the sequence at the origin in a Nats-Stream-Source header:
// "<source> <sequence> <filter> <transform> <subject>".
func sourceSeq(v string) (uint64, bool) {
	f := strings.Fields(v)
	if len(f) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	return n, err == nil
}

// report moves each site's hub consumer to what the worker received of it since the last
// report. A site that does not answer (its link is down) is told again next time.
func (h *heldSites) report(ctx context.Context, b *Buffer) {
	h.mu.Lock()
	todo := map[string]uint64{}
	for site, seq := range h.seen {
		if seq > h.sent[site] {
			todo[site] = seq
		}
	}
	h.mu.Unlock()
	for site, seq := range todo {
		req, _ := json.Marshal(map[string]uint64{"seq": seq + 1}) // the floor becomes seq
		subj := HubAPIPrefix(site) + ".CONSUMER.RESET." + b.cfg.Stream + "." + HubConsumer
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := b.nc.RequestWithContext(rctx, subj, req)
		cancel()
		if err != nil { // the site's link is down: told again next time
			b.log.Debug().Err(err).Str("site", site).Msg("tell the site what the hub holds")
			continue
		}
		var r struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if json.Unmarshal(resp.Data, &r) == nil && r.Error != nil {
			b.log.Warn().Str("site", site).Str("error", r.Error.Description).Msg("tell the site what the hub holds")
			continue
		}
		h.mu.Lock()
		h.sent[site] = max(h.sent[site], seq)
		h.mu.Unlock()
	}
}
