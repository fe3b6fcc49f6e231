package edge_test

import (
	"os"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"
)

// The fleet's compose example holds together: its services, the Sluice configs it mounts
// (valid, each in its role) and the hub servers' configuration (domain, cluster, leafnode port
// and a user per site limited to the site's subjects).
func TestFleetDeployExample(t *testing.T) {
	raw, err := os.ReadFile("../deploy/fleet/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"nats-1", "nats-2", "nats-3", "timescaledb", "worker-1", "worker-2", "edge"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("docker-compose.yml: no service %s", name)
		}
	}
	roles := map[string]string{"worker-1": sink.RoleWorker, "worker-2": sink.RoleWorker, "edge": sink.RoleEdge}
	for name, role := range roles {
		svc := compose.Services[name]
		if len(svc.Command) != 3 || svc.Command[0] != "run" {
			t.Errorf("%s: command %v, want run --config <file>", name, svc.Command)
			continue
		}
		file := "../deploy/fleet/" + svc.Command[2][len("/etc/sluice/"):]
		if !slices.ContainsFunc(svc.Volumes, func(v string) bool { return v == "./"+file[len("../deploy/fleet/"):]+":"+svc.Command[2]+":ro" }) {
			t.Errorf("%s: %s is not mounted", name, svc.Command[2])
		}
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lookup := func(k string) (string, bool) {
			if k == "SLUICE_ETC" {
				return "../deploy/compose", true // where the edge's users.yaml comes from
			}
			v, ok := svc.Environment[k]
			return v, ok
		}
		cfg, err := edge.ParseConfig(file, body, lookup)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if cfg.Role != role {
			t.Errorf("%s: role %q, want %q", name, cfg.Role, role)
		}
	}

	env := compose.Services["nats-1"].Environment
	for k, v := range env {
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile("../deploy/fleet/hub.conf")
	if err != nil {
		t.Fatalf("hub.conf: %v", err)
	}
	if opts.ServerName != "nats-1" || opts.JetStreamDomain != "hub" || len(opts.Routes) != 3 || opts.LeafNode.Port != 7422 {
		t.Errorf("hub.conf: server %q domain %q routes %d leafnode port %d, want nats-1, hub, 3, 7422",
			opts.ServerName, opts.JetStreamDomain, len(opts.Routes), opts.LeafNode.Port)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	if u := users["worker"]; u == nil || u.Password != env["WORKER_PASSWORD"] || u.Permissions != nil {
		t.Errorf("hub.conf: worker user %+v, want the compose password and no limits", u)
	}
	site := users["site-a"]
	if site == nil || site.Permissions == nil || site.Permissions.Publish == nil {
		t.Fatalf("hub.conf: site-a user %+v, want publish and subscribe limits", site)
	}
	if got, want := site.Permissions.Publish.Allow, []string{"sluice.fleet.site-a.>", "$JSC.R.>", "_INBOX.>"}; !slices.Equal(got, want) {
		t.Errorf("hub.conf: site-a may publish %v, want %v (as the tests' hub)", got, want)
	}
	if got, want := site.Permissions.Subscribe.Allow, []string{"$JS.site-a.API.>", "$JS.FC.>", "_INBOX.>"}; !slices.Equal(got, want) {
		t.Errorf("hub.conf: site-a may receive %v, want %v (as the tests' hub)", got, want)
	}
}
