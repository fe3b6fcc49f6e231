package edge_test

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/internal/mqtttest"
	"github.com/sluice-iot/sluice/internal/pgtest"
	"github.com/sluice-iot/sluice/internal/sitetest"
)

// mosquittoPub publishes with the real Mosquitto client.
func mosquittoPub(t *testing.T, addr, topic, payload string, qos int) {
	t.Helper()
	host, port := splitAddr(t, addr)
	out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", fmt.Sprint(qos), "-t", topic, "-m", payload).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func TestEndToEndMosquittoPub(t *testing.T) {
	site := sitetest.Start(t, sitetest.Config(t))
	mosquittoPub(t, site.MQTTAddr, "sensors/dev-1/up", `{"temperature":21.5,"humidity":40,"time":"2026-01-02T03:04:05Z"}`, 1)

	if n := site.WaitRows(t, "SELECT count(*) FROM readings", 2, 10*time.Second); n != 2 {
		t.Fatalf("readings: got %d rows, want 2", n)
	}
	rows, err := pgtest.Connect(t, site.Schema).Query(context.Background(),
		"SELECT time, tenant, device, metric, value, unit FROM readings ORDER BY metric")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type reading struct {
		time                         time.Time
		tenant, device, metric, unit string
		value                        float64
	}
	var got []reading
	for rows.Next() {
		var r reading
		if err := rows.Scan(&r.time, &r.tenant, &r.device, &r.metric, &r.value, &r.unit); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	want := []reading{
		{at, "default", "dev-1", "humidity", "", 40},
		{at, "default", "dev-1", "temperature", "", 21.5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d readings, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].time.Equal(want[i].time) || got[i].tenant != want[i].tenant || got[i].device != want[i].device ||
			got[i].metric != want[i].metric || got[i].value != want[i].value || got[i].unit != want[i].unit {
			t.Errorf("reading %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Ten clients publish 1,000 QoS 1 messages each: every one becomes exactly two readings.
func TestTenThousandQoS1Messages(t *testing.T) {
	site := sitetest.Start(t, sitetest.Config(t))
	const clients, perClient = 10, 1000
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := mqtttest.Connect(t, site.MQTTAddr, fmt.Sprintf("load-%d", c))
			defer cl.Disconnect(100)
			for i := range perClient {
				tok := cl.Publish(fmt.Sprintf("sensors/dev-%d/up", c), 1, false,
					fmt.Sprintf(`{"seq":%d,"value":%d,"time":%d}`, i, i*c, 1_700_000_000_000+int64(i)))
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Errorf("client %d message %d: not acknowledged: %v", c, i, tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	acked := time.Since(start)
	n := site.WaitRows(t, "SELECT count(*) FROM readings", 2*clients*perClient, 60*time.Second)
	t.Logf("%d messages acknowledged in %v (%.0f msg/s); %d readings stored after %v",
		clients*perClient, acked, float64(clients*perClient)/acked.Seconds(), n, time.Since(start))
	if n != 2*clients*perClient {
		t.Fatalf("readings: got %d, want %d", n, 2*clients*perClient)
	}
	dups := pgtest.Count(t, site.Schema, `SELECT count(*) FROM (SELECT device, metric, time FROM readings GROUP BY 1, 2, 3 HAVING count(*) > 1) d`)
	if dups != 0 {
		t.Fatalf("%d duplicate readings", dups)
	}
	perDevice := pgtest.Count(t, site.Schema, `SELECT count(DISTINCT value) FROM readings WHERE metric = 'seq' AND device = 'dev-3'`)
	if perDevice != perClient {
		t.Fatalf("device dev-3: got %d distinct seq values, want %d", perDevice, perClient)
	}
}
