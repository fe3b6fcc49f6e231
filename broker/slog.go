package broker

import (
	"context"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// newSlog returns a slog.Logger whose records go to log, so that mochi's own logging lands in
// the same zerolog stream with the same levels.
func newSlog(log zerolog.Logger) *slog.Logger {
	return slog.New(&slogHandler{log: log})
}

type slogHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
	group string
}

func (h *slogHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= zlevel(l)
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	ev := h.log.WithLevel(zlevel(r.Level))
	add := func(a slog.Attr) bool {
		if a.Key == "pk" || a.Key == "packet" {
			// mochi attaches whole packets, payload included: device data stays out of logs.
			if pk, ok := a.Value.Resolve().Any().(packets.Packet); ok {
				ev = ev.Uint8("packet_type", pk.FixedHeader.Type).Str("topic", pk.TopicName)
				return true
			}
		}
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		ev = ev.Any(key, a.Value.Resolve().Any())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &n
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}

func zlevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.InfoLevel
	default:
		return zerolog.DebugLevel
	}
}
