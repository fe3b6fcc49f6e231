package broker

import "fmt"

// Warnings returns what is valid but probably not meant, each with its key path: a user that
// neither its own ACL rules nor the global ones allow anything (every publish and subscription
// it makes is refused). Anonymous clients and certificate users without an entry are not
// users here. It reads the users file; a file that does not load gives no warning (Validate
// reports it).
func (c Config) Warnings() []string {
	if len(c.Auth.ACL) > 0 {
		return nil // every user has the global rules
	}
	var out []string
	warn := func(key string, list []UserConfig) {
		for i, u := range list {
			if len(u.ACL) == 0 && u.Username != "" {
				out = append(out, fmt.Sprintf("%s[%d]: user %q has no ACL rule, its own or global: every publish and subscription it makes will be refused", key, i, u.Username))
			}
		}
	}
	warn("auth.users", c.Auth.Users)
	if c.Auth.UsersFile != "" {
		if list, err := readUsersFile(c.Auth.UsersFile); err == nil {
			warn("auth.users_file: "+c.Auth.UsersFile+": users", list)
		}
	}
	return out
}
