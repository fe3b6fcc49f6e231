package broker_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-iot/sluice/broker"
)

// TestCloseWhileClientsConnect: closing the broker while clients connect and leave returns
// (mochi's way of finding a listener's clients takes the clients' read lock twice in a row,
// which deadlocks when a connecting client waits for the write lock in between).
func TestCloseWhileClientsConnect(t *testing.T) {
	for i := range 20 {
		cfg := broker.DefaultConfig()
		cfg.Listeners[0].Address = "127.0.0.1:0"
		b, err := broker.New(cfg, testLogger(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		addr := b.Addrs()[0]
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					// Keep-alive 1 s: a client still in CONNECT when the listener closes
					// leaves within 1.5 s.
					if c, err := rawConnect(addr, fmt.Sprintf("churn-%d-%d", g, n), "", "", 1); err == nil {
						c.Close()
					}
				}
			}()
		}
		for n := range 50 { // clients to close, while others connect and leave
			if c, err := rawConnect(addr, fmt.Sprintf("steady-%d-%d", i, n), "", "", 1); err == nil {
				defer c.Close()
			}
		}
		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Close did not return within 30s", i)
		}
		close(stop)
		wg.Wait()
	}
}
