package edge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"
)

// The fleet's sample configs are references too: they load and validate as shipped.
func TestFleetSampleConfigsLoad(t *testing.T) {
	e, err := edge.LoadConfig("../configs/edge.yaml")
	if err != nil {
		t.Fatalf("configs/edge.yaml: %v", err)
	}
	if e.Role != sink.RoleEdge || e.NATS.Site != "site-a" || len(e.NATS.Hub.URLs) != 1 || e.NATS.Hub.User != "site-a" {
		t.Errorf("configs/edge.yaml: got role %q site %q hub %+v", e.Role, e.NATS.Site, e.NATS.Hub)
	}
	w, err := edge.LoadConfig("../configs/worker.yaml")
	if err != nil {
		t.Fatalf("configs/worker.yaml: %v", err)
	}
	if w.Role != sink.RoleWorker || w.NATS.Replicas != 3 || strings.Join(w.NATS.Sources, ",") != "site-a,site-b" {
		t.Errorf("configs/worker.yaml: got role %q replicas %d sources %v", w.Role, w.NATS.Replicas, w.NATS.Sources)
	}
	if got := w.Sink.Targets[0].AckWait; got != 30*time.Second {
		t.Errorf("configs/worker.yaml: ack_wait %v, want 30s", got)
	}
	all, err := edge.LoadConfig("../configs/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if all.Role != sink.RoleAll {
		t.Errorf("configs/sluice.yaml: role %q, want the default %q", all.Role, sink.RoleAll)
	}
}

func TestFleetConfigReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown role", `
role: hub
routes: [{topic: "a/{device}", decoder: json, tenant: t}]
sink: {targets: [{name: main, database_url: "postgres://h/x"}]}
`, []string{`role: "hub" is not one of all, edge, worker`}},
		{"edge", `
role: edge
nats:
  url: nats://elsewhere:4222
  site: "a.b"
  sources: [x]
  replicas: 9
  hub:
    urls: ["http://hub:7422", "nats-leaf://u:p@hub:7422"]
    password: secret
    tls: {cert: /nonexistent/site.crt}
routes: [{topic: "a/{device}", decoder: json, tenant: t}]
`, []string{
			`nats.url: an edge runs its embedded server; remove url`,
			`nats.site: "a.b" is not a valid site name`,
			`nats.sources: only a worker sources sites; remove it in role edge`,
			`nats.hub.urls[0]: scheme "http" is not one of nats-leaf, nats, tls, ws, wss`,
			`nats.hub.urls[1]: put the user and password in hub.user and hub.password`,
			`nats.hub.password: set hub.user too`,
			`nats.hub.tls.cert, hub.tls.key: set both or neither`,
			`nats.hub.tls.cert: stat /nonexistent/site.crt: no such file or directory`,
		}},
		{"edge without a site or hub", `
role: edge
routes: [{topic: "a/{device}", decoder: json, tenant: t}]
`, []string{`nats.site: required in role edge`, `nats.hub.urls: at least one hub URL is required in role edge`}},
		{"worker", `
role: worker
nats:
  site: a
  sources: [a, "b c", a]
  replicas: 9
  hub: {urls: ["nats-leaf://hub:7422"]}
sink: {targets: [{name: main, database_url: "postgres://h/x", ack_wait: 10ms}]}
`, []string{
			`nats.url: required in role worker`,
			`nats.site: only an edge has a site; remove it in role worker`,
			`nats.hub: only an edge links to the hub; remove it in role worker`,
			`nats.sources[1]: "b c" is not a valid site name`,
			`nats.sources[2]: "a" is listed twice`,
			`nats.replicas: 9 is outside 1..5`,
			`sink.targets[0].ack_wait: 10ms is below the minimum of 1s`,
		}},
		{"all", `
nats: {site: a, sources: [b]}
routes: [{topic: "a/{device}", decoder: json, tenant: t}]
sink: {targets: [{name: main, database_url: "postgres://h/x"}]}
`, []string{`nats.site: only used in role edge`, `nats.sources: only used in role worker`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ce := configProblems(t, tt.yaml, tt.want); len(ce.Problems) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(ce.Problems), len(tt.want), ce)
			}
		})
	}
}

// A worker needs no routes and an edge no database: each role validates what it runs.
func TestFleetRolesNeedOnlyWhatTheyRun(t *testing.T) {
	if _, err := edge.ParseConfig("w.yaml", []byte(`
role: worker
nats: {url: "nats://hub:4222"}
sink: {targets: [{name: main, database_url: "postgres://h/x"}]}
`), env(nil)); err != nil {
		t.Errorf("worker without routes: %v", err)
	}
	if _, err := edge.ParseConfig("e.yaml", []byte(`
role: edge
nats: {site: s1, hub: {urls: ["nats-leaf://hub:7422"]}}
routes: [{topic: "a/{device}", decoder: json, tenant: t}]
`), env(nil)); err != nil {
		t.Errorf("edge without a database: %v", err)
	}
}
