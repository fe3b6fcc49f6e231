package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// AuthConfig says who may connect and what each client may publish and subscribe to. When
// allow_anonymous is off, every client must authenticate (password or client certificate)
// and everything no ACL rule allows is denied.
type AuthConfig struct {
	// UsersFile is a YAML file with a `users:` list like Users (see
	// configs/users.example.yaml); its users are added to the inline ones.
	UsersFile string       `yaml:"users_file"`
	Users     []UserConfig `yaml:"users"`
	// ACL rules apply to every authenticated client, after its own rules.
	ACL []ACLRule `yaml:"acl"`
	// CertUsername is how a verified client certificate names its user: "cn" (the subject
	// common name, the default) or "san" (the first DNS name, else the first email address).
	CertUsername string `yaml:"cert_username"`
	// FailedLogins throttles password guessing per client address and per username.
	FailedLogins LoginThrottleConfig `yaml:"failed_logins"`
}

// UserConfig is one user or device.
type UserConfig struct {
	Username string `yaml:"username"`
	// PasswordHash is a bcrypt hash, as printed by `sluice passwd`. Without it the user can
	// only log in with a client certificate.
	PasswordHash string `yaml:"password_hash"`
	// Password exists only to reject plaintext passwords with a clear error.
	Password string `yaml:"password"`
	// Tenant is what %t stands for in ACL rules for this user.
	Tenant string    `yaml:"tenant"`
	ACL    []ACLRule `yaml:"acl"`
}

// DefaultAuthConfig has no users and names certificate users by their common name.
func DefaultAuthConfig() AuthConfig {
	return AuthConfig{CertUsername: "cn", FailedLogins: DefaultLoginThrottleConfig()}
}

// user is a loaded, validated user.
type user struct {
	name   string
	tenant string
	hash   []byte // nil: certificate only
	acl    []aclRule
}

// load validates the inline users and rules, reads the users file, and returns every user by
// name. It reports every problem, each with its key path.
func (c AuthConfig) load() (map[string]*user, error) {
	var errs []error
	switch c.CertUsername {
	case "cn", "san":
	default:
		errs = append(errs, fmt.Errorf("cert_username: %q is not one of cn, san", c.CertUsername))
	}
	users := map[string]*user{}
	errs = append(errs, addUsers(users, c.Users, "users")...)
	if c.UsersFile != "" {
		fileUsers, err := readUsersFile(c.UsersFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("users_file: %w", err))
		}
		for _, e := range addUsers(users, fileUsers, "users") {
			errs = append(errs, fmt.Errorf("users_file: %s: %w", c.UsersFile, e))
		}
	}
	for i, r := range c.ACL {
		if err := r.validate(); err != nil {
			errs = append(errs, prefixAll(fmt.Sprintf("acl[%d].", i), err)...)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return users, nil
}

func addUsers(into map[string]*user, list []UserConfig, key string) []error {
	var errs []error
	for i, uc := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case uc.Username == "":
			errs = append(errs, fmt.Errorf("%s.username: required", k))
		case strings.ContainsAny(uc.Username, "+#/"):
			errs = append(errs, fmt.Errorf("%s.username: %q contains +, # or /, which would widen ACL rules with %%u", k, uc.Username))
		case into[uc.Username] != nil:
			errs = append(errs, fmt.Errorf("%s.username: %q is defined twice", k, uc.Username))
		}
		if strings.ContainsAny(uc.Tenant, "+#/") {
			errs = append(errs, fmt.Errorf("%s.tenant: %q contains +, # or /", k, uc.Tenant))
		}
		if uc.Password != "" {
			errs = append(errs, fmt.Errorf("%s.password: plaintext passwords are not accepted; replace it with password_hash, printed by 'sluice passwd'", k))
		}
		var hash []byte
		if uc.PasswordHash != "" {
			hash = []byte(uc.PasswordHash)
			if _, err := bcrypt.Cost(hash); err != nil || !bytes.HasPrefix(hash, []byte("$2")) {
				errs = append(errs, fmt.Errorf("%s.password_hash: not a bcrypt hash (plaintext passwords are not accepted; make one with 'sluice passwd')", k))
			}
		}
		u := &user{name: uc.Username, tenant: uc.Tenant, hash: hash}
		for j, r := range uc.ACL {
			if err := r.validate(); err != nil {
				errs = append(errs, prefixAll(fmt.Sprintf("%s.acl[%d].", k, j), err)...)
				continue
			}
			u.acl = append(u.acl, r.compile())
		}
		if uc.Username != "" && into[uc.Username] == nil {
			into[uc.Username] = u
		}
	}
	return errs
}

// readUsersFile reads a users file; unknown keys are errors.
func readUsersFile(path string) ([]UserConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Users []UserConfig `yaml:"users"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc.Users, nil
}
