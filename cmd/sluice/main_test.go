package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The quick-start config checks from the repository root, where its relative directories
// (configs/templates) are, as `run` would find them.
func TestCheckSampleConfig(t *testing.T) {
	t.Chdir("../..")
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", "configs/sluice.yaml"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, errOut.String())
	}
	if got := out.String(); got != "configs/sluice.yaml: ok\n" {
		t.Errorf("stdout: got %q", got)
	}
}

// A broken config exits with code 2 and names every problem in one message.
func TestBrokenConfigExitsTwoWithEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "log: {level: chatty}\nmqtt: {max_clients: 0, listners: []}\nrouts: []\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"check", "run", "migrate"} {
		var out, errOut bytes.Buffer
		if code := run([]string{cmd, "--config", path}, &out, &errOut); code != exitUsage {
			t.Errorf("%s: exit %d, want %d", cmd, code, exitUsage)
		}
		for _, want := range []string{"mqtt.listners: unknown key (line 2)", "routs: unknown key (line 3)"} {
			if !strings.Contains(errOut.String(), want) {
				t.Errorf("%s: stderr does not mention %q:\n%s", cmd, want, errOut.String())
			}
		}
	}
	// Once the keys are right, the value problems are all reported together.
	if err := os.WriteFile(path, []byte("log: {level: chatty}\nmqtt: {max_clients: 0}\nroutes: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", path}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	for _, want := range []string{`log.level: "chatty" is not one of`, "mqtt.max_clients: must be at least 1", "routes: at least one route is required"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr does not mention %q:\n%s", want, errOut.String())
		}
	}
}

func TestUnknownCommandIsUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("stderr: %s", errOut.String())
	}
}
