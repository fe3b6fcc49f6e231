package bench

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Client kinds of the generator.
const (
	ClientMinimal = "minimal"
	ClientPaho    = "paho"
)

// mqttClient is what the generator needs of one MQTT connection.
type mqttClient interface {
	// publish sends one message (QoS 1: waits for room in the in-flight window); scratch is
	// the caller's buffer, returned for reuse.
	publish(topic string, payload, scratch []byte) ([]byte, error)
	flush() error
	// drain waits for the PUBACK of every QoS 1 publish.
	drain(timeout time.Duration) error
	close()
	ackedCount() int64
	// latencies returns the PUBACK latencies in µs.
	latencies() []uint32
}

func (p *publisher) ackedCount() int64 { return p.acked.Load() }

func (p *publisher) latencies() []uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

// pahoClient publishes through github.com/eclipse/paho.mqtt.golang, for comparing the
// generator's own cost with a well-known client's.
type pahoClient struct {
	c       paho.Client
	qos     byte
	window  chan struct{}
	pending chan pahoPending
	acked   atomic.Int64
	mu      sync.Mutex
	latency []uint32
	err     atomic.Value
	done    chan struct{}
}

type pahoPending struct {
	tok   paho.Token
	start time.Time
}

func dialPaho(addr, clientID string, qos byte, inflight int) (*pahoClient, error) {
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetOrderMatters(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("paho connect to %s: %v", addr, tok.Error())
	}
	p := &pahoClient{c: c, qos: qos, window: make(chan struct{}, inflight),
		pending: make(chan pahoPending, inflight), done: make(chan struct{})}
	go p.collect()
	return p, nil
}

// collect waits for each publish's token in order and records its latency.
func (p *pahoClient) collect() {
	defer close(p.done)
	for pp := range p.pending {
		pp.tok.Wait()
		if err := pp.tok.Error(); err != nil {
			p.err.CompareAndSwap(nil, err)
		} else if p.qos > 0 {
			lat := time.Since(pp.start)
			p.mu.Lock()
			p.latency = append(p.latency, uint32(lat/time.Microsecond))
			p.mu.Unlock()
			p.acked.Add(1)
		}
		<-p.window
	}
}

func (p *pahoClient) publish(topic string, payload, scratch []byte) ([]byte, error) {
	if err, _ := p.err.Load().(error); err != nil {
		return scratch, err
	}
	p.window <- struct{}{}
	msg := append([]byte(nil), payload...) // paho keeps the slice until it is sent
	p.pending <- pahoPending{tok: p.c.Publish(topic, p.qos, false, msg), start: time.Now()}
	return scratch, nil
}

func (p *pahoClient) flush() error { return nil }

func (p *pahoClient) drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for len(p.window) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d publishes unacknowledged after %v", len(p.window), timeout)
		}
		time.Sleep(time.Millisecond)
	}
	if err, _ := p.err.Load().(error); err != nil {
		return err
	}
	return nil
}

func (p *pahoClient) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.pending)
	<-p.done
	p.c.Disconnect(100)
}

func (p *pahoClient) ackedCount() int64 { return p.acked.Load() }

func (p *pahoClient) latencies() []uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

var errUnknownClient = errors.New("want minimal or paho")
