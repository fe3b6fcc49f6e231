// Package sluice holds the shared vocabulary of the Sluice edge ingestor: an Uplink and its
// Readings, the versioned wire encoding of the messages Sluice stores in NATS JetStream, and the
// subject names that connect the ingest hooks to the sinks. It performs no I/O.
package sluice
