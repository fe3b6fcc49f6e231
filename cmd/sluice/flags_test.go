package main

import (
	"bytes"
	"strings"
	"testing"
)

// -h and --help print a command's flags and exit 0, for every command.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"run", "check", "migrate", "replay", "status", "decode", "passwd", "bench"} {
		for _, flag := range []string{"-h", "--help"} {
			var out, errOut bytes.Buffer
			if code := run([]string{cmd, flag}, &out, &errOut); code != exitOK {
				t.Errorf("sluice %s %s: exit %d, want 0", cmd, flag, code)
			}
			if !strings.Contains(out.String()+errOut.String(), "-") {
				t.Errorf("sluice %s %s printed no flags", cmd, flag)
			}
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--no-such-flag"}, &out, &errOut); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want %d", code, exitUsage)
	}
}

// run --log-level overrides log.level, and a bad level is a usage error naming the key.
func TestRunLogLevelFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--config", "../../configs/sluice.yaml", "--log-level", "chatty"}, &out, &errOut); code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errOut.String())
	}
	if want := `log.level: "chatty" is not one of`; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr does not mention %q:\n%s", want, errOut.String())
	}
}
