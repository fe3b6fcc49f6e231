// Package sink is the at-least-once path from the JetStream buffer to a database: the buffer
// itself (embedded or external NATS, stream setup, publishing), the pull consumer of each
// target, batching, the PostgreSQL/TimescaleDB writer and its schema migrations.
//
// It must not know MQTT or decoding: its input is the wire format of package sluice.
package sink
