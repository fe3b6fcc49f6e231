package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-iot/sluice/edge"
	"github.com/sluice-iot/sluice/sink"
)

// `sluice status` of an edge shows its link to the hub and what the hub does not hold yet; a
// site of role all shows no hub line.
func TestPrintStatusHub(t *testing.T) {
	st := edge.Status{Ready: "degraded", Targets: []sink.TargetStatus{},
		Hub: &sink.HubStatus{Site: "site-a", Connected: false, LagMessages: 1234, HeldSequence: 5678}}
	var out bytes.Buffer
	printStatus(&out, st)
	if want := "hub: disconnected, site site-a, 1234 messages not yet at the hub, held up to sequence 5678\n"; !strings.Contains(out.String(), want) {
		t.Errorf("sluice status printed:\n%s\nwant a line %q", out.String(), want)
	}
	out.Reset()
	st.Hub = nil
	printStatus(&out, st)
	if strings.Contains(out.String(), "hub:") {
		t.Errorf("sluice status of a site without a hub printed:\n%s", out.String())
	}
}
