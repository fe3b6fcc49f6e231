// Package hooks holds the mochi-mqtt hook plugins that run inline on the publishing client's
// goroutine: the ingest hook (route, limit, unwrap, de-duplicate, decode, filter, store in the
// buffer before the PUBACK) and its stages, built whole by NewIngest. It declares the small
// interfaces it needs (Publisher and StoredUplinks of the buffer, Devices of the registry) and
// imports no sink or NATS client code; the device registry and the subscriptions to other
// brokers live in packages registry and bridge.
package hooks
