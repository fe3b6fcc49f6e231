package broker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-iot/sluice/broker"
	"github.com/sluice-iot/sluice/internal/mqtttest"
)

// testCA is a certificate authority generated for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	file string // PEM of the CA certificate
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.file = filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue signs a certificate for cn (server: with a 127.0.0.1 SAN) and returns it and the
// paths of its PEM certificate and key.
func (ca *testCA) issue(t testing.TB, cn string, server bool) (tls.Certificate, string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	kder, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A broker with a server-only TLS listener (password login) and a mutual TLS listener (the
// client certificate's CN is the username, no password).
func TestTLS(t *testing.T) {
	ca := newCA(t, "sluice test CA")
	_, certFile, keyFile := ca.issue(t, "127.0.0.1", true)
	dev1, _, _ := ca.issue(t, "dev-1", false)
	stranger, _, _ := newCA(t, "someone else's CA").issue(t, "dev-1", false)

	cfg := authConfig(t)
	cfg.Listeners = []broker.ListenerConfig{
		{ID: "tcp", Type: "tcp", Address: "127.0.0.1:0"},
		{ID: "tls", Type: "tls", Address: "127.0.0.1:0", TLS: broker.TLSConfig{CertFile: certFile, KeyFile: keyFile}},
		{ID: "mtls", Type: "tls", Address: "127.0.0.1:0", TLS: broker.TLSConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.file}},
	}
	b := start(t, cfg)
	addrs := b.Addrs()
	tcpURL, tlsURL, mtlsURL := "tcp://"+addrs[0], "ssl://"+addrs[1], "ssl://"+addrs[2]

	var seen collector
	mon, err := connect3(t, tcpURL, "monitor", "monitor", "secret-monitor", nil)
	if err != nil {
		t.Fatal(err)
	}
	mon.Subscribe("sensors/#", 1, seen.handler).WaitTimeout(5 * time.Second)

	t.Run("server TLS with password", func(t *testing.T) {
		cl, err := connect3(t, tlsURL, "dev-2", "dev-2", "secret-dev-2", &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		if tok := cl.Publish("sensors/dev-2/up", 1, false, "over tls"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		if _, err := connect3(t, tlsURL, "dev-2b", "dev-2", "wrong", &tls.Config{RootCAs: ca.pool}); !containsErr(err, "not Authorized") {
			t.Errorf("wrong password over TLS: got %v, want not Authorized", err)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		_, err := connect3(t, tlsURL, "old", "dev-2", "secret-dev-2", &tls.Config{RootCAs: ca.pool, MaxVersion: tls.VersionTLS11})
		if err == nil {
			t.Fatal("a TLS 1.1 client connected, want a handshake failure")
		}
	})
	t.Run("mutual TLS, certificate names the user", func(t *testing.T) {
		cl, err := connect3(t, mtlsURL, "dev-1-cert", "", "", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{dev1}})
		if err != nil {
			t.Fatalf("connect with a trusted client certificate: %v", err)
		}
		// The ACL's %u is the certificate's CN.
		if tok := cl.Publish("sensors/dev-1/up", 1, false, "over mtls"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	})
	t.Run("untrusted client certificate refused", func(t *testing.T) {
		if _, err := connect3(t, mtlsURL, "intruder", "", "", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{stranger}}); err == nil {
			t.Error("a client with a certificate from an unknown CA connected")
		}
		if _, err := connect3(t, mtlsURL, "no-cert", "dev-1", "secret-dev-1", &tls.Config{RootCAs: ca.pool}); err == nil {
			t.Error("a client without a certificate connected to a listener that requires one")
		}
	})
	t.Run("certificate and username disagree", func(t *testing.T) {
		_, err := connect3(t, mtlsURL, "dev-1-as-2", "dev-2", "secret-dev-2", &tls.Config{RootCAs: ca.pool, Certificates: []tls.Certificate{dev1}})
		if !containsErr(err, "not Authorized") {
			t.Errorf("got %v, want not Authorized", err)
		}
	})

	mqtttest.WaitFor(t, 10*time.Second, "messages over TLS", func() bool { return len(seen.list()) >= 2 })
	if got := b.counter(t, "sluice_broker_logins_total", "method", "certificate"); got != 1 {
		t.Errorf("sluice_broker_logins_total{method=certificate}: got %v, want 1", got)
	}
	if got := b.counter(t, "sluice_broker_auth_failures_total", "reason", "certificate_mismatch"); got != 1 {
		t.Errorf("sluice_broker_auth_failures_total{reason=certificate_mismatch}: got %v, want 1", got)
	}
}

func TestTLSConfigProblems(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listeners = []broker.ListenerConfig{
		{ID: "a", Type: "tls", Address: "127.0.0.1:8883"},
		{ID: "b", Type: "wss", Address: "127.0.0.1:8884", TLS: broker.TLSConfig{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem", MinVersion: "1.0", ClientCerts: "maybe"}},
	}
	err := cfg.Validate()
	for _, want := range []string{
		"listeners[0].tls.cert_file, key_file: both are required for a tls or wss listener",
		"listeners[1].tls.min_version: \"1.0\" is not one of 1.2, 1.3",
		"listeners[1].tls.cert_file, key_file: open /nonexistent/c.pem: no such file or directory",
		"listeners[1].tls.client_certs: needs client_ca_file",
	} {
		if !containsErr(err, want) {
			t.Errorf("Validate: got %v\nwant a problem containing %q", err, want)
		}
	}
}
