package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestCheckMeansRunWillStart: one config with a mistake of every kind. `check` names all of
// them in one run, with key paths (and the line for values that do not parse): unknown keys,
// values of the wrong type, invalid values, and what only building the site finds — a route
// naming an unknown decoder, a script that does not compile, a database URL that does not
// parse, an address whose port is out of range. It warns about a user no ACL rule lets do
// anything, which is not an error.
func TestCheckMeansRunWillStart(t *testing.T) {
	dir := t.TempDir()
	scripts := filepath.Join(dir, "scripts")
	if err := os.Mkdir(scripts, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scripts, "broken.js"), []byte("function decodeUplink(input) {\n  return {data: {a: }};\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `data_dir: ` + filepath.Join(dir, "data") + `
http:
  address: 127.0.0.1:99999
nats:
  max_bytes: 1GB-ish
  max_age: soon
  duplicate_window: 4s
memory_limit: 8MiB
mqtt:
  max_clients: 0
  listners: []
decoders:
  scripts_dir: ` + scripts + `
routes:
  - topic: sensors/{device}/up
    decoder: no-such-decoder
    tenant: default
sink:
  targets:
    - name: main
      database_url: "postgres://user:pass@db:5432/sluice?sslmode=maybe-not"
`
	path := filepath.Join(dir, "six.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", path}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d; stdout:\n%s", code, exitUsage, out.String())
	}
	for _, want := range []string{
		`nats.max_bytes: invalid size "1GB-ish"`, "(line 5)",
		"nats.max_age: cannot unmarshal !!str `soon` into time.Duration (line 6)",
		"mqtt.listners: unknown key (line 11)",
		"memory_limit: 8MiB is below 32MiB; 0 means no limit",
		"nats.duplicate_window: 4s is shorter than twice publish_timeout (5s)",
		"mqtt.max_clients: must be at least 1",
		`http.address: "127.0.0.1:99999": invalid port`,
		"sink.targets[0].database_url: cannot parse",
		"decoders: " + filepath.Join(scripts, "broken.js") + ":2:21: syntax error",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("check does not report %q:\n%s", want, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "pass@") {
		t.Errorf("check prints the database password:\n%s", errOut.String())
	}

	// Once the script compiles, the route naming a decoder that does not exist is found too.
	if err := os.WriteFile(filepath.Join(scripts, "broken.js"), []byte("function decodeUplink(input) { return {data: {}} }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run([]string{"check", "--config", path}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	if want := `routes[0].decoder: unknown decoder "no-such-decoder" (known: broken, cayenne-lpp, json, raw)`; !strings.Contains(errOut.String(), want) {
		t.Errorf("check does not report %q:\n%s", want, errOut.String())
	}
}

// A user that neither its own rules nor the global ones let do anything is worth a warning:
// every publish of it would be refused.
func TestCheckWarnsForUserWithoutACL(t *testing.T) {
	dir := t.TempDir()
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(h)
	cfg := `data_dir: ` + filepath.Join(dir, "data") + `
mqtt:
  allow_anonymous: false
  auth:
    users:
      - {username: dev-1, password_hash: "` + hash + `", acl: [{topic: sensors/dev-1/#, access: publish}]}
      - {username: dev-2, password_hash: "` + hash + `"}
routes:
  - {topic: "sensors/{device}/up", decoder: json, tenant: default}
sink:
  targets:
    - {name: main, database_url: "postgres://localhost/sluice"}
`
	path := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", path}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, errOut.String())
	}
	want := `warning: mqtt.auth.users[1]: user "dev-2" has no ACL rule, its own or global: every publish and subscription it makes will be refused`
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr does not warn %q:\n%s", want, errOut.String())
	}
	if strings.Contains(errOut.String(), `"dev-1"`) {
		t.Errorf("warning about dev-1, which has a rule:\n%s", errOut.String())
	}
	if got := out.String(); got != path+": ok\n" {
		t.Errorf("stdout: got %q", got)
	}
}
