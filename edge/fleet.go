package edge

import (
	"context"
	"fmt"

	"github.com/sluice-iot/sluice/sink"
)

// validateRole checks the role and what it leaves out (docs/fleet.md): the keys of the role
// itself are the buffer's (nats.site, nats.hub, nats.sources, nats.replicas).
func (c *Config) validateRole() error {
	switch c.Role {
	case sink.RoleAll, sink.RoleEdge, sink.RoleWorker:
		return nil
	}
	return fmt.Errorf("role: %q is not one of %s, %s, %s", c.Role, sink.RoleAll, sink.RoleEdge, sink.RoleWorker)
}

// sinkTargets are the database targets the role runs: none at an edge, whose readings go to
// the hub.
func (c *Config) sinkTargets() []sink.TargetConfig {
	if c.Role == sink.RoleEdge {
		return nil
	}
	return c.Sink.Targets
}

// roleWarnings are what is valid in the role but has no effect.
func (c *Config) roleWarnings() []string {
	var w []string
	if c.Role == sink.RoleEdge && len(c.Sink.Targets) > 0 && c.Sink.Targets[0].DatabaseURL != "" {
		w = append(w, "sink.targets: an edge runs no database sink; its readings go to the hub, the targets are ignored")
	}
	if c.Role == sink.RoleWorker && len(c.Routes) > 0 {
		w = append(w, "routes: a worker runs no broker; the routes are ignored")
	}
	return w
}

// hubPart keeps an edge's hub metrics current and reclaims what the hub holds; in a worker it
// tells the sites what the hub holds of them (nothing in role all).
func (s *Site) hubPart() part {
	if s.cfg.Role == sink.RoleAll {
		return part{name: "hub"}
	}
	return part{
		name: "hub",
		run:  func(ctx context.Context) error { s.buffer.RunHub(ctx); return nil },
	}
}

// workerParts are a hub sink worker's parts: the hub stream, the admin listener and the
// targets, whose durable consumers the workers share.
func (s *Site) workerParts() []part {
	parts := []part{s.bufferPart(), s.adminPart(), s.hubPart()}
	for _, t := range s.targets {
		parts = append(parts, s.targetPart(t), jobsPart(t))
	}
	return parts
}
