package decoders

import (
	"fmt"
	"sort"
	"strings"
)

// Set is the decoders available to routes, by name. It is safe for concurrent use once built.
type Set struct {
	byName map[string]Decoder
}

// NewSet returns the built-in decoders plus extra.
func NewSet(extra ...Decoder) *Set {
	s := &Set{byName: map[string]Decoder{}}
	for _, d := range append([]Decoder{JSON{}, CayenneLPP{}, Raw{}}, extra...) {
		s.byName[d.Name()] = d
	}
	return s
}

// Lookup returns the decoder called name.
func (s *Set) Lookup(name string) (Decoder, bool) {
	d, ok := s.byName[name]
	return d, ok
}

// Names lists the decoders, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check returns an error naming the known decoders when name is not one of them.
func (s *Set) Check(name string) error {
	if _, ok := s.byName[name]; ok {
		return nil
	}
	return fmt.Errorf("unknown decoder %q (known: %s)", name, strings.Join(s.Names(), ", "))
}
