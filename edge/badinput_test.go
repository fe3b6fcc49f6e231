package edge_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-iot/sluice/hooks"
	"github.com/sluice-iot/sluice/internal/metrictest"
	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// TestBadInputIsRefused publishes what a careless or hostile device sends: names that are
// not UTF-8, a time of 0001-01-01 and a payload nested 10,000 deep. None of it is stored as a
// reading; each ends on the error or dead-letter subject with an error that says what is wrong.
func TestBadInputIsRefused(t *testing.T) {
	cfg := sitetest.Config(t)
	cfg.NATS.Listen = mqtttest.FreeAddr(t)
	// A script that names its readings with lone surrogates: both names are "t\uFFFDa" in Go.
	scripts := t.TempDir()
	if err := os.WriteFile(filepath.Join(scripts, "surrogate.js"), []byte(`function decodeUplink(input) {
  var d = {}; d["t\uD800a"] = 1; d["t\uDC00b"] = 2; return {data: d};
}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Decoders.ScriptsDir = scripts
	cfg.Routes = append(cfg.Routes, hooks.RouteConfig{Topic: "js/{device}/up", Decoder: "surrogate", Tenant: "default"})
	site := sitetest.Start(t, cfg)
	cl := mqtttest.Connect(t, site.MQTTAddr, "careless")
	publish := func(device, payload string) {
		t.Helper()
		if tok := cl.Publish("sensors/"+device+"/up", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish to %s: %v", device, tok.Error())
		}
	}
	// Two different invalid names: decoded as they are, both would become "t\uFFFDa", one series.
	publish("bad-utf8", "{\"t\xffa\": 1}")
	publish("bad-utf8", "{\"t\xfea\": 2}")
	publish("deep", strings.Repeat(`{"a":`, 10000)+"1"+strings.Repeat("}", 10000))
	publish("year-one", `{"v": 1, "time": "0001-01-01T00:00:00Z"}`)
	if tok := cl.Publish("js/surrogate/up", 1, false, []byte{1}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to js/surrogate/up: %v", tok.Error())
	}
	publish("fine", `{"v": 1}`)

	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE device = 'fine'", 1, 10*time.Second); n != 1 {
		t.Fatalf("readings of the well-formed message: got %d, want 1", n)
	}
	if got := metrictest.Value(t, site.Registry(), "sluice_ingest_messages_total", "result", "failed"); got != 3 {
		t.Errorf("sluice_ingest_messages_total{result=failed}: got %v, want 3", got)
	}
	js := jetStream(t, cfg.NATS.Listen)
	for _, e := range []struct{ stream, subject, want string }{
		{cfg.NATS.Stream, "sluice.err.default.bad-utf8", "invalid payload: not valid UTF-8 at byte 3"},
		{cfg.NATS.Stream, "sluice.err.default.bad-utf8", "invalid payload: not valid UTF-8 at byte 3"},
		{cfg.NATS.Stream, "sluice.err.default.deep", "invalid payload: nested deeper than 64 levels at byte 320"},
		{cfg.NATS.Stream + "_DLQ", "sluice.dlq.main", "time 0001-01-01T00:00:00Z is out of range"},
		{cfg.NATS.Stream + "_DLQ", "sluice.dlq.main", "metric contains U+FFFD, the mark of text that was not valid"},
	} {
		msgs := messagesOn(t, js, e.stream, e.subject)
		found := false
		for _, m := range msgs {
			found = found || strings.Contains(m["error"].(string), e.want)
		}
		if !found {
			t.Errorf("%s: no message with error %q in %v", e.subject, e.want, msgs)
		}
	}
	if n := site.WaitRows(t, "SELECT count(*) FROM readings WHERE device <> 'fine'", 0, 0); n != 0 {
		t.Errorf("readings of the refused messages: got %d, want 0", n)
	}
}

// messagesOn waits for at least one message on subject in stream and returns them all, decoded
// as JSON objects.
func messagesOn(t *testing.T, js jetstream.JetStream, stream, subject string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			t.Fatalf("consumer on %s: %v", subject, err)
		}
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for m := range batch.Messages() {
			var v map[string]any
			if err := json.Unmarshal(m.Data(), &v); err != nil {
				t.Fatalf("message on %s: %v", subject, err)
			}
			out = append(out, v)
		}
		if len(out) > 0 {
			return out
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no message on %s", subject)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
