package broker

import "testing"

func TestACLRuleAllows(t *testing.T) {
	s := subject{username: "dev-1", clientID: "c-1", tenant: "acme"}
	for _, tc := range []struct {
		rule, access, topic string
		write, want         bool
	}{
		{"sensors/%u/up", "publish", "sensors/dev-1/up", true, true},
		{"sensors/%u/up", "publish", "sensors/dev-2/up", true, false},
		{"sensors/%u/up", "publish", "sensors/dev-1/up", false, false}, // access
		{"sensors/%u/up", "subscribe", "sensors/dev-1/up", true, false},
		{"sensors/%u/#", "all", "sensors/dev-1", true, true}, // # matches the parent level
		{"sensors/%u/#", "all", "sensors/dev-1/a/b", true, true},
		{"tenants/%t/+/up", "publish", "tenants/acme/x/up", true, true},
		{"tenants/%t/+/up", "publish", "tenants/other/x/up", true, false},
		{"clients/%c", "publish", "clients/c-1", true, true},
		{"pre-%u-post/x", "publish", "pre-dev-1-post/x", true, true},
		// subscriptions must stay inside the rule
		{"sensors/#", "subscribe", "sensors/+/up", false, true},
		{"sensors/#", "subscribe", "sensors/#", false, true},
		{"sensors/#", "subscribe", "#", false, false},
		{"sensors/+/up", "subscribe", "sensors/+/up", false, true},
		{"sensors/+/up", "subscribe", "sensors/#", false, false},
		{"sensors/dev-1/up", "subscribe", "sensors/+/up", false, false},
		{"sensors/#", "subscribe", "$share/g/sensors/+/up", false, true},
		// $ topics are never matched by a leading wildcard
		{"#", "all", "$SYS/broker/clients", false, false},
		{"+/broker/#", "all", "$SYS/broker/clients", false, false},
		{"$SYS/#", "subscribe", "$SYS/broker/clients", false, true},
	} {
		r := ACLRule{Topic: tc.rule, Access: tc.access}
		if err := r.validate(); err != nil {
			t.Fatalf("rule %q: %v", tc.rule, err)
		}
		if got := r.compile().allows(s, tc.topic, tc.write); got != tc.want {
			t.Errorf("rule %q %s, topic %q write=%v: got %v, want %v", tc.rule, tc.access, tc.topic, tc.write, got, tc.want)
		}
	}
	// Placeholders without a value, or with one that would change the filter, allow nothing.
	for _, s := range []subject{{username: "dev-1"}, {username: "a/b", tenant: "acme"}, {username: "+", tenant: "acme"}} {
		for _, rule := range []string{"tenants/%t/#", "sensors/%u/#"} {
			r := ACLRule{Topic: rule, Access: "all"}.compile()
			for _, topic := range []string{"tenants//x", "sensors/a/b/x", "sensors/+/x", "sensors/x"} {
				if rule == "tenants/%t/#" && s.tenant != "" || rule == "sensors/%u/#" && s.username == "dev-1" {
					continue
				}
				if r.allows(s, topic, true) {
					t.Errorf("rule %q for %+v allows %q", rule, s, topic)
				}
			}
		}
	}
}

func TestACLRuleValidate(t *testing.T) {
	for rule, want := range map[string]string{
		"a/#/b":  `topic: "a/#/b": # must be the last level`,
		"a/b+":   `topic: "a/b+": + and # must fill a whole level`,
		"a/%x":   `topic: "a/%x": only %u, %c and %t placeholders exist`,
		"":       "topic: required",
		"a/%u/#": "",
	} {
		err := ACLRule{Topic: rule, Access: "publish"}.validate()
		if got := errString(err); got != want {
			t.Errorf("%q: got %q, want %q", rule, got, want)
		}
	}
	if got := errString(ACLRule{Topic: "a", Access: "read"}.validate()); got != `access: "read" is not one of publish, subscribe, all` {
		t.Errorf("access: got %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func FuzzACLRule(f *testing.F) {
	f.Add("sensors/%u/#", "sensors/dev-1/up", "dev-1", true)
	f.Add("+/%t/+", "$share/g/x/y/z", "u", false)
	f.Fuzz(func(t *testing.T, rule, topic, user string, write bool) {
		r := ACLRule{Topic: rule, Access: "all"}
		if r.validate() != nil {
			return
		}
		r.compile().allows(subject{username: user, clientID: user, tenant: user}, topic, write)
	})
}
