package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig is the TLS side of a tls or wss listener.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"` // PEM certificate chain of the server
	KeyFile  string `yaml:"key_file"`  // PEM private key of the server
	// ClientCAFile, when set, makes the listener verify client certificates against these
	// PEM CA certificates; a verified certificate authenticates the client (see
	// auth.cert_username).
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientCerts is "required" (the default with a client CA: a client without a trusted
	// certificate fails the handshake) or "optional" (such a client may log in with a
	// password instead; a certificate it does present must still be trusted).
	ClientCerts string `yaml:"client_certs"`
	MinVersion  string `yaml:"min_version"` // "1.2" (default) or "1.3"
}

// build loads the files and returns the server's tls.Config, reporting every problem.
func (c TLSConfig) build() (*tls.Config, error) {
	var errs []error
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch c.MinVersion {
	case "", "1.2":
	case "1.3":
		tc.MinVersion = tls.VersionTLS13
	default:
		errs = append(errs, fmt.Errorf("min_version: %q is not one of 1.2, 1.3", c.MinVersion))
	}
	if c.CertFile == "" || c.KeyFile == "" {
		errs = append(errs, errors.New("cert_file, key_file: both are required for a tls or wss listener"))
	} else if cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		errs = append(errs, fmt.Errorf("cert_file, key_file: %w", err))
	} else {
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.ClientCAFile != "" {
		pool, err := loadCertPool(c.ClientCAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("client_ca_file: %w", err))
		}
		tc.ClientCAs = pool
		switch c.ClientCerts {
		case "", "required":
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		case "optional":
			tc.ClientAuth = tls.VerifyClientCertIfGiven
		default:
			errs = append(errs, fmt.Errorf("client_certs: %q is not one of required, optional", c.ClientCerts))
		}
	} else if c.ClientCerts != "" {
		errs = append(errs, errors.New("client_certs: needs client_ca_file"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return tc, nil
}

func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}
