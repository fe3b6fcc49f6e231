package sluice

import "strings"

// Subject prefixes. Every subject Sluice writes starts with one of these.
const (
	UplinkPrefix = "sluice.up."
	ErrorPrefix  = "sluice.err."
	DLQPrefix    = "sluice.dlq."
)

// UplinkSubject is where the decoded uplinks of one device are stored.
func UplinkSubject(tenant, device string) string {
	return UplinkPrefix + SubjectToken(tenant) + "." + SubjectToken(device)
}

// ErrorSubject is where the failures of one device are stored, with their raw payload.
func ErrorSubject(tenant, device string) string {
	return ErrorPrefix + SubjectToken(tenant) + "." + SubjectToken(device)
}

// DLQSubject is where the rows a database target refused are recorded.
func DLQSubject(target string) string { return DLQPrefix + SubjectToken(target) }

// SubjectToken escapes s into exactly one NATS subject token, so that an id taken from a topic
// or a payload can never add, remove or wildcard a token. Bytes other than ASCII letters,
// digits, '-' and '_' are written as %XX; the empty string becomes "_" (a lone "_" is escaped).
// The mapping is injective, so distinct ids never share a subject.
func SubjectToken(s string) string {
	if s == "_" {
		return "%5F"
	}
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
