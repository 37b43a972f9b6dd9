// SPDX-License-Identifier: MIT

package emulator

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/storage"
)

// storageConfig turns the storage options into the hub's file-upload
// setting and the HTTP client it reaches storage with. Storage is trusted
// by the system roots, the emulator's own CA (so an Azurite certificate it
// signed works) and StorageCAFile.
func (s *Server) storageConfig() (*hub.FileUploadConfig, *http.Client, error) {
	o := s.opts
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if len(s.tls.CAPEM) > 0 {
		roots.AppendCertsFromPEM(s.tls.CAPEM)
	}
	if o.StorageCAFile != "" {
		pem, err := os.ReadFile(o.StorageCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("storage CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("storage CA file %s holds no PEM certificate", o.StorageCAFile)
		}
	}
	client := &http.Client{
		Timeout: 5 * time.Minute,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	if o.StorageConnectionString == "" {
		return nil, client, nil
	}
	acct, err := storage.ParseConnectionString(o.StorageConnectionString)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (check --storage-connection-string)", err)
	}
	if o.FileUploadSASTTL < time.Minute || o.FileUploadSASTTL > hub.MaxFileUploadSASTTL {
		return nil, nil, fmt.Errorf("file upload SAS time to live %s: want 1m to 24h", o.FileUploadSASTTL)
	}
	return &hub.FileUploadConfig{
		Account:       acct,
		Container:     o.FileUploadContainer,
		SASTTL:        o.FileUploadSASTTL,
		Notifications: !o.DisableFileUploadNotifications,
	}, client, nil
}

// IssueServerCertificate writes a server certificate for hosts (plus
// localhost, 127.0.0.1 and ::1) to certFile and keyFile (mode 0600),
// signed by the CA in dataDir: the CA the emulator serves with, created
// when missing. It is for a storage emulator beside the hub, such as
// Azurite: clients that trust the emulator's ca.pem then trust it too, and
// the hub reaches it without StorageCAFile.
func IssueServerCertificate(dataDir string, hosts []string, certFile, keyFile string) error {
	return certs.IssueServerFiles(dataDir, hosts, certFile, keyFile, 0o600, time.Now())
}
