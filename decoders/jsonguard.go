package decoders

import (
	"fmt"
	"unicode/utf8"
)

// checkJSON refuses, before any decoding, JSON text that would be decoded into something
// other than what was sent, or at a cost out of proportion to its size:
//
//   - invalid UTF-8: encoding/json replaces each bad sequence with U+FFFD, so that two
//     different bad names become one series;
//   - nesting deeper than maxDepth: a 60 KB payload nested 10,000 deep is valid JSON, and
//     flattening it builds names quadratic in the depth.
//
// It does not otherwise validate the JSON; the decoder that follows does.
func checkJSON(b []byte) error {
	depth := 0
	inString, escaped := false, false
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Errorf("%w: not valid UTF-8 at byte %d", ErrPayload, i)
			}
			i += size
			escaped = false
			continue
		}
		i++
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return fmt.Errorf("%w: nested deeper than %d levels at byte %d", ErrPayload, maxDepth, i-1)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
