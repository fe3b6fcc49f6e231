package sink

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The hub's server sets a site's source up again when it has heard nothing for 10 s, with a
// request to the site that waits up to 30 s for its answer; after each failed attempt it waits
// 10 s more than after the one before (up to 2 min). Nothing about the leafnode link coming
// back shortens that: a request sent while the link was down still waits out its 30 s, and
// then the backoff: after a cut of a minute, the next attempt comes about 40 s after the link.
//
// A worker therefore watches the sources of the sites it lists, once a second. When a site's
// source has been silent for sourceStalled (a healthy one hears a heartbeat every second), it
// asks the site's JetStream API through the hub whether the link is up. Once a site that did
// not answer answers again while its source is still silent, the worker restarts the source by
// removing it from the hub stream and adding it again. A source that is only slow (a busy hub
// or site) while its site answers is left alone. The server sets a source it
// is given up at once, without backoff, after the last message of the site the hub stream
// holds, as after any restart of the stream.
const (
	sourceStalled = 5 * time.Second
	// nudgeEvery is how often a worker restarts one site's source at most.
	nudgeEvery = 30 * time.Second
)

// nudgeSources restarts the stalled sources of reachable sites, and adds back a listed site's
// source that is missing (another worker stopped while restarting it). Role worker only.
func (b *Buffer) nudgeSources(ctx context.Context) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return
	}
	info := s.CachedInfo()
	have := map[string]*jetstream.StreamSourceInfo{}
	for _, src := range info.Sources {
		if src.External != nil {
			have[apiPrefixSite(src.External.APIPrefix)] = src
		}
	}
	var stalled []string
	for _, site := range b.cfg.Sources {
		src, ok := have[site]
		if !ok {
			if err := b.ensureHubStream(ctx); err != nil {
				b.log.Warn().Err(err).Str("site", site).Msg("add back the site's source")
			}
			return
		}
		if src.Active >= 0 && src.Active < sourceStalled {
			delete(b.unreachable, site) // the source is going
			continue
		}
		if time.Since(b.nudged[site]) < nudgeEvery {
			continue
		}
		if len(info.Config.Sources) < 2 {
			// Without any source the server would give the stream a subject of its own: a hub
			// of one site waits for the server's own retry.
			return
		}
		stalled = append(stalled, site)
	}
	// Whether each stalled site answers, all at once: sites whose link is down take the
	// request's whole timeout.
	answers := make([]bool, len(stalled))
	var wg sync.WaitGroup
	for i, site := range stalled {
		wg.Go(func() {
			_, err := b.siteAPI(ctx, site, "STREAM.INFO."+b.cfg.Stream, nil)
			answers[i] = err == nil
		})
	}
	wg.Wait()
	if b.nudged == nil {
		b.nudged, b.unreachable = map[string]time.Time{}, map[string]bool{}
	}
	for i, site := range stalled {
		if !answers[i] {
			b.unreachable[site] = true // the link is down: the source cannot resume yet
			continue
		}
		if !b.unreachable[site] {
			continue // the link did not break: the source is slow, not waiting out a lost request
		}
		delete(b.unreachable, site)
		b.nudged[site] = time.Now()
		if ok, err := b.restartSource(ctx, site); err != nil || !ok {
			if err != nil {
				b.log.Warn().Err(err).Str("site", site).Msg("restart the hub stream's source of the site")
			}
			continue
		}
		b.fm.restarts.WithLabelValues(site).Inc()
		b.log.Info().Str("site", site).Dur("silent", have[site].Active).Msg("the site answers but the hub stream's source was silent: restarted it")
	}
}

// restartSource removes site's source from the hub stream, waits (up to 3 s) until the site no
// longer has the hub's sourcing consumer, so that its deletion cannot hit the new one, and adds
// the source back. It reports false, and does nothing, when another worker is restarting it.
func (b *Buffer) restartSource(ctx context.Context, site string) (bool, error) {
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return false, err
	}
	cfg := s.CachedInfo().Config
	cfg.Sources = slices.DeleteFunc(slices.Clone(cfg.Sources), func(src *jetstream.StreamSource) bool { return sourceSite(src) == site })
	if len(cfg.Sources) == len(s.CachedInfo().Config.Sources) || len(cfg.Sources) == 0 {
		return false, nil // another worker is restarting it, or the stream would be left without source
	}
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		return false, err
	}
	wait := time.NewTicker(100 * time.Millisecond)
	defer wait.Stop()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil && b.siteSourcing(ctx, site); {
		select {
		case <-ctx.Done():
		case <-wait.C:
		}
	}
	// Added back even when ctx is done, so that the site is never left without its source.
	return true, b.ensureHubStream(context.WithoutCancel(ctx))
}

// siteSourcing reports whether site's stream has a sourcing consumer (the server names them
// JS_SRC_…), or does not answer.
func (b *Buffer) siteSourcing(ctx context.Context, site string) bool {
	r, err := b.siteRequest(ctx, site, "CONSUMER.NAMES."+b.cfg.Stream, nil)
	if err != nil {
		return true
	}
	var names struct {
		Consumers []string `json:"consumers"`
	}
	if json.Unmarshal(r, &names) != nil {
		return true
	}
	return slices.ContainsFunc(names.Consumers, func(n string) bool { return strings.HasPrefix(n, "JS_SRC_") })
}
