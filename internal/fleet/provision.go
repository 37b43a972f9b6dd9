// SPDX-License-Identifier: MIT

package fleet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// bulkSize is the hub's limit of entries per bulk registry operation.
const bulkSize = 100

// DeviceIDs returns n device ids: prefix-000000, prefix-000001, ...
func DeviceIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%06d", prefix, i)
	}
	return ids
}

// Auth is how created devices authenticate.
type Auth string

// The authentication kinds CreateDevices supports.
const (
	AuthSAS  Auth = "sas"  // one symmetric key shared by every simulated device
	AuthX509 Auth = "x509" // a self-signed certificate per device, registered by thumbprint
)

// CreateDevices registers the devices in bulk (100 per request) and returns
// their credentials. With AuthSAS every device gets key (a new random key
// when empty); with AuthX509 each gets a fresh self-signed certificate.
// Devices that exist already are updated to these credentials, so a
// simulation can be re-run against the same hub. tags, when set, gives the
// i-th device's twin tags (a JSON object).
func CreateDevices(ctx context.Context, c *service.Client, ids []string, auth Auth, key string, tags func(i int) []byte) ([]Credential, error) {
	if auth == AuthSAS && key == "" {
		key = sas.GenerateKey()
	}
	creds := make([]Credential, len(ids))
	for start := 0; start < len(ids); start += bulkSize {
		batch := ids[start:min(start+bulkSize, len(ids))]
		entries := make([]service.ExportImportDevice, len(batch))
		for i, id := range batch {
			e := service.ExportImportDevice{ID: id, ImportMode: service.ImportUpdate, Status: service.StatusEnabled}
			if tags != nil {
				e.Tags = service.TwinCollection(tags(start + i))
			}
			switch auth {
			case AuthSAS:
				e.Authentication = &service.AuthenticationMechanism{Type: service.AuthSAS, SymmetricKey: &service.SymmetricKey{PrimaryKey: key, SecondaryKey: key}}
				creds[start+i] = Credential{DeviceID: id, Key: key}
			case AuthX509:
				cert, thumb, err := selfSigned(id)
				if err != nil {
					return nil, err
				}
				e.Authentication = &service.AuthenticationMechanism{Type: service.AuthSelfSigned, X509Thumbprint: &service.X509Thumbprint{PrimaryThumbprint: thumb, SecondaryThumbprint: thumb}}
				creds[start+i] = Credential{DeviceID: id, Cert: cert}
			default:
				return nil, fmt.Errorf("fleet: unknown authentication %q", auth)
			}
			entries[i] = e
		}
		if _, err := c.BulkRegistryOperation(ctx, entries); err != nil {
			return nil, fmt.Errorf("creating devices %s to %s: %w", batch[0], batch[len(batch)-1], err)
		}
	}
	return creds, nil
}

// DeleteDevices removes the devices in bulk.
func DeleteDevices(ctx context.Context, c *service.Client, ids []string) error {
	for start := 0; start < len(ids); start += bulkSize {
		batch := ids[start:min(start+bulkSize, len(ids))]
		entries := make([]service.ExportImportDevice, len(batch))
		for i, id := range batch {
			entries[i] = service.ExportImportDevice{ID: id, ImportMode: service.ImportDelete}
		}
		if res, err := c.BulkRegistryOperation(ctx, entries); err != nil {
			// Devices already gone are not a failure of the clean-up.
			if res == nil || !onlyNotFound(res) {
				return fmt.Errorf("deleting devices %s to %s: %w", batch[0], batch[len(batch)-1], err)
			}
		}
	}
	return nil
}

func onlyNotFound(r *service.BulkRegistryOperationResult) bool {
	for _, e := range r.Errors {
		if !strings.Contains(e.ErrorCode, "NotFound") && e.ErrorCode != "404001" {
			return false
		}
	}
	return true
}

// selfSigned makes a P-256 certificate with CN=id and returns it with its
// SHA-256 thumbprint (upper-case hex, as the hub shows thumbprints).
func selfSigned(id string) (*tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, strings.ToUpper(hex.EncodeToString(sum[:])), nil
}
