package sink

import (
	"context"
	"encoding/json"
	"fmt"
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
		if err := b.moveHubFloor(ctx, site, seq); err != nil { // the site's link is down: told again next time
			b.log.Debug().Err(err).Str("site", site).Msg("tell the site what the hub holds")
			continue
		}
		h.mu.Lock()
		h.sent[site] = max(h.sent[site], seq)
		h.mu.Unlock()
	}
}

// apiResponse is the part of a JetStream API response read here.
type apiResponse struct {
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
	AckFloor struct {
		Stream uint64 `json:"stream_seq"`
	} `json:"ack_floor"`
}

// siteAPI sends a request to site's JetStream API through the hub.
func (b *Buffer) siteAPI(ctx context.Context, site, api string, req []byte) (*apiResponse, error) {
	data, err := b.siteRequest(ctx, site, api, req)
	if err != nil {
		return nil, err
	}
	var r apiResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", api, err)
	}
	if r.Error != nil {
		return nil, fmt.Errorf("%s: %s", api, r.Error.Description)
	}
	return &r, nil
}

// siteRequest sends a request to site's JetStream API through the hub and returns the response.
func (b *Buffer) siteRequest(ctx context.Context, site, api string, req []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	msg, err := b.nc.RequestWithContext(ctx, HubAPIPrefix(site)+"."+api, req)
	if err != nil {
		return nil, err
	}
	return msg.Data, nil
}

// moveHubFloor moves site's hub consumer floor up to seq, not down when another worker told the
// site of a later message already. (Two workers telling it at the same moment may still move it
// back a little, which only makes the site reclaim less.)
func (b *Buffer) moveHubFloor(ctx context.Context, site string, seq uint64) error {
	name := b.cfg.Stream + "." + HubConsumer
	info, err := b.siteAPI(ctx, site, "CONSUMER.INFO."+name, nil)
	if err != nil {
		return err
	}
	if info.AckFloor.Stream >= seq {
		return nil
	}
	req, _ := json.Marshal(map[string]uint64{"seq": seq + 1}) // the floor becomes seq
	_, err = b.siteAPI(ctx, site, "CONSUMER.RESET."+name, req)
	return err
}
