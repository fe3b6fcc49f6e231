// Package hooks holds the mochi-mqtt hook plugins that run inline on the publishing client's
// goroutine: the ingest hook (route, decode, store in the buffer before the PUBACK) and the
// limits it applies. It declares the small interfaces it needs (a Publisher, StoredUplinks)
// and imports no sink or NATS client code.
package hooks
