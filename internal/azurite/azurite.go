// SPDX-License-Identifier: MIT

// Package azurite starts Azurite, Microsoft's Azure Storage emulator, for a
// test: its blob service on a random loopback port, over HTTPS with a
// certificate from a CA made for the test (the device SDKs only speak
// HTTPS to storage), data in memory, stopped at cleanup.
//
// Azurite is an npm package, installed by `npm ci` in e2e/azurite. Tests
// that need it run when IOTHUB_E2E_AZURITE=1 (make test sets it) and skip
// with a message otherwise; once enabled, a missing installation fails the
// test with the command that installs it.
package azurite

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/storage"
)

// EnvEnable turns the Azurite tests on; EnvBinary names another
// azurite-blob executable.
const (
	EnvEnable = "IOTHUB_E2E_AZURITE"
	EnvBinary = "IOTHUB_AZURITE"
)

// Server is a running Azurite blob service.
type Server struct {
	Endpoint         string           // https://127.0.0.1:{port}/devstoreaccount1
	ConnectionString string           // the well-known account with BlobEndpoint=Endpoint
	Account          *storage.Account // the same, parsed
	CAFile           string           // PEM of the CA that signed Azurite's certificate
	CAPEM            []byte
	Pool             *x509.CertPool // trusts CAFile

	cmd      *exec.Cmd
	stopOnce sync.Once
	out      *lockedBuffer
}

// Enabled reports whether the Azurite tests are turned on.
func Enabled() bool { return os.Getenv(EnvEnable) == "1" }

// Binary returns the azurite-blob executable the tests use.
func Binary() string {
	if b := os.Getenv(EnvBinary); b != "" {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "e2e", "azurite", "node_modules", ".bin", "azurite-blob")
}

// Start runs Azurite for t, or skips t when the Azurite tests are off.
func Start(t testing.TB) *Server {
	t.Helper()
	if !Enabled() {
		t.Skipf("Azurite tests are off: set %s=1 (make test does) after `cd e2e/azurite && npm ci`", EnvEnable)
	}
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s=1 but Azurite is not installed at %s: run `cd e2e/azurite && npm ci` (or set %s)", EnvEnable, bin, EnvBinary)
	}
	dir := t.TempDir()
	s, err := start(bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var listening = regexp.MustCompile(`successfully listens on (https?://[0-9.]+:[0-9]+)`)

func start(bin, dir string) (*Server, error) {
	caPEM, certFile, keyFile, err := writeCerts(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{CAFile: filepath.Join(dir, "azurite-ca.pem"), CAPEM: caPEM, out: &lockedBuffer{}}
	if err := os.WriteFile(s.CAFile, caPEM, 0o644); err != nil {
		return nil, err
	}
	s.Pool = x509.NewCertPool()
	s.Pool.AppendCertsFromPEM(caPEM)
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", "0",
		// --loose: @azure/storage-blob 12.8 (azure-iot-device's) sends
		// x-ms-encryption-algorithm, which strict Azurite refuses.
		"--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
		"--cert", certFile, "--key", keyFile)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start Azurite (%s): %w", bin, err)
	}
	s.cmd = cmd
	found := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			s.out.Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case base := <-found:
		s.Endpoint = base + "/" + storage.DevAccountName
	case <-scanned: // stdout closed: Azurite exited before listening
		s.Stop()
		return nil, fmt.Errorf("azurite exited before it listened; output:\n%s", s.out.String())
	case <-time.After(60 * time.Second):
		s.Stop()
		return nil, fmt.Errorf("azurite did not report its port within 60 s; output:\n%s", s.out.String())
	}
	s.ConnectionString = "DefaultEndpointsProtocol=https;AccountName=" + storage.DevAccountName +
		";AccountKey=" + storage.DevAccountKey + ";BlobEndpoint=" + s.Endpoint + ";"
	if s.Account, err = storage.ParseConnectionString(s.ConnectionString); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// HTTPClient is a client that trusts Azurite's certificate.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.Pool, MinVersion: tls.VersionTLS12}}}
}

// Storage is a storage client for Azurite.
func (s *Server) Storage() *storage.Client { return &storage.Client{HTTP: s.HTTPClient()} }

// CreateContainer creates a container with an account SAS.
func (s *Server) CreateContainer(t testing.TB, name string) {
	t.Helper()
	sas := s.Account.AccountSAS("rwdlac", "sco", time.Time{}, time.Now().Add(time.Hour))
	if err := s.Storage().CreateContainer(context.Background(), s.Account.ContainerURL(name)+"?"+sas); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
}

// ContainerSASURL is a container URL with a SAS granting perms for an hour.
func (s *Server) ContainerSASURL(container, perms string) string {
	return s.Account.ContainerURL(container) + "?" + s.Account.ContainerSAS(container, perms, time.Time{}, time.Now().Add(time.Hour))
}

// ReadBlob returns a blob's content.
func (s *Server) ReadBlob(t testing.TB, container, blob string) []byte {
	t.Helper()
	u := s.Account.BlobURL(container, blob) + "?" + s.Account.BlobSAS(container, blob, "r", time.Time{}, time.Now().Add(time.Hour))
	rc, err := s.Storage().GetBlob(context.Background(), u)
	if err != nil {
		t.Fatalf("read blob %s/%s: %v", container, blob, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read blob %s/%s: %v", container, blob, err)
	}
	return b
}

// WriteBlob writes a blob.
func (s *Server) WriteBlob(t testing.TB, container, blob string, data []byte) {
	t.Helper()
	u := s.Account.BlobURL(container, blob) + "?" + s.Account.BlobSAS(container, blob, "cw", time.Time{}, time.Now().Add(time.Hour))
	if err := s.Storage().PutBlob(context.Background(), u, strings.NewReader(string(data)), int64(len(data)), ""); err != nil {
		t.Fatalf("write blob %s/%s: %v", container, blob, err)
	}
}

// Stop ends Azurite (the whole process group: npm's launcher starts node
// as a child). Tests call it to see how the hub copes with storage gone.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}

// Output is what Azurite printed, for failure messages.
func (s *Server) Output() string { return s.out.String() }

// writeCerts makes a CA and a server certificate for 127.0.0.1 and
// localhost, valid for a day.
func writeCerts(dir string) (caPEM []byte, certFile, keyFile string, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Azurite test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, "", "", err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", "", err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certFile, keyFile = filepath.Join(dir, "azurite.pem"), filepath.Join(dir, "azurite-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, "", "", err
	}
	return caPEM, certFile, keyFile, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
