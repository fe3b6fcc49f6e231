package sink

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Where a new target starts (TargetConfig.Start); any other value is an RFC 3339 time.
const (
	StartAll = "all" // all retained history
	StartNew = "new" // messages stored from now on
)

// parseStart turns a start value into the consumer's deliver policy.
func parseStart(s string) (jetstream.DeliverPolicy, *time.Time, error) {
	switch s {
	case StartAll:
		return jetstream.DeliverAllPolicy, nil, nil
	case StartNew:
		return jetstream.DeliverNewPolicy, nil, nil
	}
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, nil, fmt.Errorf("%q is not all, new or an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return jetstream.DeliverByStartTimePolicy, &at, nil
}
