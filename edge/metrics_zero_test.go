package edge_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-iot/sluice/internal/sitetest"
)

// TestMetricsPublishedAtZero scrapes /metrics of a site that has seen no traffic: every
// counter an alert rule would watch is there at 0 with each of its known labels, so that
// `rate(...) > 0` and `absent(...)` rules have a series from the start.
func TestMetricsPublishedAtZero(t *testing.T) {
	site := sitetest.Start(t, sitetest.Config(t))
	resp, err := http.Get("http://" + site.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]string{} // series → value
	for _, line := range strings.Split(string(body), "\n") {
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			series[line[:i]] = line[i+1:]
		}
	}
	families := map[string][]string{ // family → label sets, each `{...}` as exposed
		"sluice_sink_errors_total":       {`{kind="data",target="main"}`, `{kind="transient",target="main"}`},
		"sluice_sink_dead_letters_total": {`{reason="invalid",target="main"}`, `{reason="refused",target="main"}`, `{reason="unreadable",target="main"}`},
		"sluice_ingest_messages_total":   {`{result="decoded"}`, `{result="failed"}`, `{result="unrouted"}`},
		"sluice_ingest_dropped_total":    {`{reason="error"}`, `{reason="full"}`},
		"sluice_ingest_refused_total":    {`{reason="error"}`, `{reason="full"}`, `{reason="timeout"}`},
		"sluice_buffer_publish_failed_total": {`{reason="closed"}`, `{reason="full"}`, `{reason="other"}`,
			`{reason="timeout"}`, `{reason="window_full"}`},
		"sluice_buffer_async_publish_failed_total": {`{reason="closed"}`, `{reason="full"}`, `{reason="other"}`,
			`{reason="timeout"}`, `{reason="window_full"}`},
		"sluice_broker_auth_failures_total": {`{reason="bad_password"}`, `{reason="certificate_mismatch"}`,
			`{reason="client_id_taken"}`, `{reason="no_credentials"}`, `{reason="no_password"}`,
			`{reason="unknown_user"}`, `{reason="will_not_authorized"}`},
		"sluice_broker_acl_denied_total":       {`{action="publish"}`, `{action="subscribe"}`},
		"sluice_broker_logins_total":           {`{method="anonymous"}`, `{method="certificate"}`, `{method="password"}`},
		"sluice_broker_outbound_dropped_total": {`{reason="expired"}`, `{reason="inflight_full"}`, `{reason="pending_writes_full"}`, `{reason="refused_by_client"}`, `{reason="session_ended"}`},
		"sluice_broker_disconnects_total": {`{reason="client"}`, `{reason="error"}`, `{reason="keep_alive"}`,
			`{reason="not_authorized"}`, `{reason="packet_too_large"}`, `{reason="taken_over"}`},
		"sluice_decoder_failures_total": {`{decoder="json",reason="exception"}`, `{decoder="json",reason="payload"}`,
			`{decoder="json",reason="timeout"}`, `{decoder="cayenne-lpp",reason="payload"}`},
		"sluice_decoder_reloads_total":         {`{result="error"}`, `{result="ok"}`, `{result="removed"}`},
		"sluice_registry_reloads_total":        {`{result="error"}`, `{result="ok"}`},
		"sluice_lorawan_events_total":          {`{format="chirpstack",kind="up"}`, `{format="ttn",kind="invalid"}`},
		"sluice_lorawan_unknown_devices_total": {`{policy="accept"}`, `{policy="park"}`, `{policy="reject"}`},
	}
	for family, labels := range families {
		for _, l := range labels {
			v, ok := series[family+l]
			switch {
			case !ok:
				t.Errorf("%s%s is not published before the first event", family, l)
			case v != "0":
				t.Errorf("%s%s = %s on a site that has seen no traffic, want 0", family, l, v)
			}
		}
	}
}
