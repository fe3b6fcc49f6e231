package broker_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/sluice-iot/sluice/broker"
)

// A subscriber that stops reading loses messages once its pending-write queue is full, and
// every such drop is counted.
func TestSlowSubscriberDropsAreCounted(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners[0].Address = "127.0.0.1:0"
	cfg.MaxPendingWrites = 8
	b := start(t, cfg)
	addr := b.Addrs()[0]

	slow, err := rawConnect(addr, "slow", "", "", 60)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	sub := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "sensors/#", Qos: 0}},
	}
	var buf bytes.Buffer
	if err := sub.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	slow.Write(buf.Bytes())
	suback := make([]byte, 5)
	if _, err := ioReadFull(slow, suback); err != nil {
		t.Fatal(err)
	}
	// From here on the subscriber reads nothing.

	pub, err := connect3(t, "tcp://"+addr, "fast", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("r", 16<<10)
	const n = 2000 // 32 MiB: more than the kernel's socket buffers hold
	for range n {
		pub.Publish("sensors/dev-1/up", 0, false, payload)
	}
	if tok := pub.Publish("sensors/dev-1/up", 1, false, "last"); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dropped := b.counter(t, "sluice_broker_outbound_dropped_total", "reason", "pending_writes_full")
	if dropped == 0 {
		t.Fatalf("sluice_broker_outbound_dropped_total{reason=pending_writes_full}: got 0 after %d messages to a subscriber that reads nothing", n)
	}

	// Now the subscriber reads. Markers are published until one arrives: messages arrive in
	// order, so by then every earlier message was either delivered or dropped, and the two
	// must add up to everything published.
	seenMarker := make(chan int, 1000)
	delivered := 0
	go func() {
		r := bufio.NewReader(slow)
		for {
			typ, body, err := readPacket(r)
			if err != nil {
				close(seenMarker)
				return
			}
			if typ != packets.Publish {
				continue
			}
			delivered++
			topicLen := int(body[0])<<8 | int(body[1])
			if m, ok := strings.CutPrefix(string(body[2+topicLen:]), "marker-"); ok {
				var i int
				fmt.Sscan(m, &i)
				seenMarker <- i
			}
		}
	}()
	markers := 0
	last := -1
	for last != markers {
		markers++
		pub.Publish("sensors/dev-1/up", 0, false, fmt.Sprintf("marker-%d", markers))
		select {
		case i, ok := <-seenMarker:
			if !ok {
				t.Fatal("the subscriber's connection closed")
			}
			last = i
		case <-time.After(100 * time.Millisecond): // another marker, in case this one was dropped
		}
		for len(seenMarker) > 0 {
			last = <-seenMarker
		}
		if markers > 1000 {
			t.Fatal("no marker arrived")
		}
	}
	slow.Close() // ends the reader; delivered is final once it closed seenMarker
	for range seenMarker {
	}
	dropped = b.counter(t, "sluice_broker_outbound_dropped_total", "reason", "pending_writes_full")
	published := n + 1 + markers
	t.Logf("%d published, %d delivered, %v dropped and counted", published, delivered, dropped)
	if float64(delivered)+dropped != float64(published) {
		t.Errorf("delivered %d + dropped %v = %v, want every one of the %d published", delivered, dropped, float64(delivered)+dropped, published)
	}
}

// readPacket reads one MQTT packet: its type and the bytes after the fixed header.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	length, mult := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		length += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first >> 4, body, nil
}
