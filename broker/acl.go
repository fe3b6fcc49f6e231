package broker

import (
	"errors"
	"fmt"
	"strings"
)

// ACLRule allows publishing and/or subscribing under a topic filter. In Topic, %u stands for
// the username, %c for the client id and %t for the user's tenant; a rule whose placeholder
// has no value (no tenant), or whose value contains +, # or /, allows nothing.
type ACLRule struct {
	Topic  string `yaml:"topic"`
	Access string `yaml:"access"` // publish, subscribe or all
}

type aclRule struct {
	levels   []string // the topic filter split on '/', placeholders unexpanded
	pub, sub bool
}

func (r ACLRule) validate() error {
	var errs []error
	if r.Topic == "" {
		errs = append(errs, errors.New("topic: required"))
	} else if err := validFilter(r.Topic); err != nil {
		errs = append(errs, fmt.Errorf("topic: %q: %w", r.Topic, err))
	}
	switch r.Access {
	case "publish", "subscribe", "all":
	default:
		errs = append(errs, fmt.Errorf("access: %q is not one of publish, subscribe, all", r.Access))
	}
	return errors.Join(errs...)
}

func validFilter(f string) error {
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return errors.New("# must be the last level")
		case l != "#" && l != "+" && strings.ContainsAny(l, "+#"):
			return errors.New("+ and # must fill a whole level")
		}
		for _, p := range strings.Split(l, "%")[1:] {
			if p == "" || !strings.ContainsRune("uct", rune(p[0])) {
				return errors.New("only %u, %c and %t placeholders exist")
			}
		}
	}
	return nil
}

func (r ACLRule) compile() aclRule {
	return aclRule{
		levels: strings.Split(r.Topic, "/"),
		pub:    r.Access == "publish" || r.Access == "all",
		sub:    r.Access == "subscribe" || r.Access == "all",
	}
}

// subject is who is asking: the values of the placeholders.
type subject struct {
	username, clientID, tenant string
}

// allows reports whether the rule lets s publish to topic (write) or subscribe to the filter
// topic (!write). A subscription is allowed only when every topic it could match is allowed.
func (r aclRule) allows(s subject, topic string, write bool) bool {
	if write && !r.pub || !write && !r.sub {
		return false
	}
	if !write {
		topic = unshare(topic)
	}
	got := strings.Split(topic, "/")
	// Wildcards at the first level never match $-topics ($SYS/...).
	dollar := strings.HasPrefix(topic, "$")
	for i, pat := range r.levels {
		if pat == "#" {
			return !(i == 0 && dollar)
		}
		if i >= len(got) {
			return false
		}
		switch {
		case pat == "+":
			if got[i] == "#" || i == 0 && dollar {
				return false
			}
		case strings.ContainsRune(pat, '%'):
			v, ok := expand(pat, s)
			if !ok || v != got[i] {
				return false
			}
		default:
			if pat != got[i] {
				return false
			}
		}
	}
	return len(got) == len(r.levels)
}

// expand replaces the placeholders of one topic level. It fails when a value is empty or
// could change the shape of the filter.
func expand(level string, s subject) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(level); i++ {
		if level[i] != '%' || i+1 == len(level) {
			b.WriteByte(level[i])
			continue
		}
		var v string
		switch level[i+1] {
		case 'u':
			v = s.username
		case 'c':
			v = s.clientID
		case 't':
			v = s.tenant
		}
		if v == "" || strings.ContainsAny(v, "+#/") {
			return "", false
		}
		b.WriteString(v)
		i++
	}
	return b.String(), true
}

// unshare strips the $share/<group>/ prefix of a shared subscription.
func unshare(filter string) string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, f, ok := strings.Cut(rest, "/"); ok {
			return f
		}
	}
	return filter
}
