package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MQTTState keeps the broker's MQTT state (broker.StateStore) in a JetStream key-value bucket
// next to the buffer's stream, in data_dir, with its own budget (nats.mqtt_state_max_bytes):
// it survives a restart and a SIGKILL. It also holds the broker's hand-off journal: a publish
// due to a persistent session is written here before it is acknowledged and deleted once it is
// queued, so that a kill in between loses nothing (docs/operations.md, MQTT state).
// It is usable once the buffer is open; the bucket is made on first use. Safe for concurrent
// use.
type MQTTState struct {
	b      *Buffer
	mu     sync.Mutex
	kv     jetstream.KeyValue
	stream jetstream.Stream // the bucket's stream, to delete a key without leaving a marker
}

// MQTTState returns the buffer's MQTT state store, nil when nats.mqtt_state_max_bytes is 0.
func (b *Buffer) MQTTState() *MQTTState {
	if b.cfg.MQTTStateMaxBytes == 0 {
		return nil
	}
	return &MQTTState{b: b}
}

// Bucket names the key-value bucket.
func (s *MQTTState) Bucket() string { return s.b.cfg.Stream + "_MQTT" }

const stateTimeout = 5 * time.Second

func (s *MQTTState) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	if s.b.js == nil {
		return nil, errors.New("mqtt state: the buffer is not open")
	}
	kv, err := s.b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.Bucket(),
		Description: "Sluice MQTT state: persistent sessions, their subscriptions and queued messages, retained messages",
		History:     1,
		MaxBytes:    int64(s.b.cfg.MQTTStateMaxBytes),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("mqtt state: bucket %s: %w", s.Bucket(), err)
	}
	st, err := s.b.js.Stream(ctx, "KV_"+s.Bucket())
	if err != nil {
		return nil, fmt.Errorf("mqtt state: bucket %s: %w", s.Bucket(), err)
	}
	s.kv, s.stream = kv, st
	return kv, nil
}

// Put stores value under key.
func (s *MQTTState) Put(key string, value []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("mqtt state: put: %w", err)
	}
	return nil
}

// Delete removes key. It purges the key's subject rather than writing a delete marker, so
// that keys come and go (one per message in flight) without the bucket growing.
func (s *MQTTState) Delete(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	if _, err := s.bucket(ctx); err != nil {
		return err
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject("$KV."+s.Bucket()+"."+key)); err != nil {
		return fmt.Errorf("mqtt state: delete: %w", err)
	}
	return nil
}

// Load returns the values of every key starting with prefix, which ends with a dot.
func (s *MQTTState) Load(prefix string) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := s.bucket(ctx)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchFiltered(ctx, []string{prefix + ">"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("mqtt state: load %s: %w", prefix, err)
	}
	defer w.Stop()
	var out [][]byte
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil { // every value there was has been sent
				return out, nil
			}
			out = append(out, e.Value())
		case <-ctx.Done():
			return nil, fmt.Errorf("mqtt state: load %s: %w", prefix, ctx.Err())
		}
	}
}
