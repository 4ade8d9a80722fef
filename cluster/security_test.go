package cluster

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// writeCert writes a self-signed certificate for 127.0.0.1 (its own CA).
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "realm-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

func TestSecurityRequiredOffLoopback(t *testing.T) {
	_, err := StartServer(ServerConfig{Listen: "0.0.0.0:0", StoreDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cluster block") {
		t.Errorf("non-loopback listen without tls and credentials: %v", err)
	}
	_, err = StartServer(ServerConfig{Name: "a", Listen: "127.0.0.1:0", Routes: []string{"nats://10.1.2.3:6222"}, StoreDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback route without tls and credentials: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := Connect(ctx, "x", "nats://10.1.2.3:4222", Security{}); err == nil || !strings.Contains(err.Error(), "cluster block") {
		t.Errorf("joining a non-loopback server without tls and credentials: %v", err)
	}
}

func TestTLSAndCredentials(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	sec := Security{CertFile: cert, KeyFile: key, CAFile: cert, User: "realm", Password: "s3cret"}
	s, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Security: sec})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	try := func(sec Security) error {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		nc, err := Connect(ctx, "t", url, sec)
		if err == nil {
			nc.Close()
		}
		return err
	}
	noPass := sec
	noPass.Password = "wrong"
	if try(noPass) == nil {
		t.Error("a client with a wrong password connected")
	}
	noCA := sec
	noCA.CAFile = ""
	if try(noCA) == nil {
		t.Error("a client that cannot verify the server's certificate connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := Connect(ctx, "fe", url, sec)
	if err != nil {
		t.Fatalf("with tls and credentials: %v", err)
	}
	defer nc.Close()
	fe, err := NewFrontend(ctx, FrontendConfig{Conn: nc})
	if err != nil {
		t.Fatal(err)
	}
	fe.Close()
}

func TestAppsByDigest(t *testing.T) {
	s := startServers(t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nc, err := Connect(ctx, "fe", s.ClientURL(), Security{})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{7}, 300<<10)...)
	fe, err := NewFrontend(ctx, FrontendConfig{Conn: nc, Apps: map[string][]byte{"chat": wasm}})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	if err := WaitReady(ctx, nc); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, digest, err := FetchApp(ctx, nc, "chat", dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if digest != Digest(wasm) || !bytes.Equal(got, wasm) || filepath.Base(path) != digest+".wasm" {
		t.Fatalf("fetched %s (%d bytes, digest %s), want %d bytes of %s", path, len(got), digest, len(wasm), Digest(wasm))
	}
	// A damaged cached copy is fetched again.
	os.WriteFile(path, []byte("junk"), 0o644)
	if _, _, err := FetchApp(ctx, nc, "chat", dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, wasm) {
		t.Error("a damaged cached app was not replaced")
	}
	// A new version of the app gets a new digest; the manifest follows.
	wasm2 := append(bytes.Clone(wasm), 1)
	if _, err := fe.PublishApp(ctx, "chat", wasm2); err != nil {
		t.Fatal(err)
	}
	if _, d2, err := FetchApp(ctx, nc, "chat", dir); err != nil || d2 != Digest(wasm2) {
		t.Errorf("after republishing: %s %v, want %s", d2, err, Digest(wasm2))
	}
	if _, _, err := FetchApp(ctx, nc, "nope", dir); err == nil {
		t.Error("an app nobody published was fetched")
	}
}

// TestRoutesWithTLS: two front-end servers route to each other over TLS
// with credentials, and a JetStream bucket replicated on both works.
func TestRoutesWithTLS(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	sec := Security{CertFile: cert, KeyFile: key, CAFile: cert, User: "realm", Password: "s3cret"}
	var listens, routes []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listens = append(listens, ln.Addr().String())
		routes = append(routes, "nats://"+ln.Addr().String())
		ln.Close()
	}
	var servers []*Server
	for i := range 2 {
		s, err := StartServer(ServerConfig{Name: fmt.Sprintf("t%d", i), Listen: "127.0.0.1:0", ClusterListen: listens[i],
			Routes: routes, StoreDir: t.TempDir(), Security: sec, Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Error})})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Shutdown()
		servers = append(servers, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := Connect(ctx, "fe", servers[0].ClientURL(), sec)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fe, err := NewFrontend(ctx, FrontendConfig{Conn: nc, Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	nc2, err := Connect(ctx, "w", servers[1].ClientURL(), sec)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if err := WaitReady(ctx, nc2); err != nil {
		t.Fatalf("the bucket is not visible through the other server: %v", err)
	}
}
