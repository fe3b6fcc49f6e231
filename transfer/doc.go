// Package transfer copies readings between databases and compares them: a resumable backfill
// from a Sluice schema or a legacy query into a target through the sink's own idempotent
// writer, and a verification that aggregates both sides per series and bucket inside each
// database and merges the results in order.
//
// It must not know MQTT, NATS or decoding; it writes only through sink.Writer.
package transfer
