// SPDX-License-Identifier: MIT

package device

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"
)

// Defaults, chosen to match the official SDKs where they agree.
const (
	// DefaultKeepAlive is the MQTT keep-alive (the Python SDK's value).
	DefaultKeepAlive = 60 * time.Second
	// DefaultTokenLifetime is the validity of generated SAS tokens (all SDKs).
	DefaultTokenLifetime = time.Hour
	// DefaultTokenRenewMargin is how long before expiry a generated token is
	// replaced (the Node SDK renews 900 s early).
	DefaultTokenRenewMargin = 15 * time.Minute
	// DefaultOperationTimeout bounds twin requests and telemetry sends,
	// including waits for a reconnect.
	DefaultOperationTimeout = 60 * time.Second
	// DefaultConnectTimeout bounds one connection attempt (dial, TLS,
	// CONNECT/CONNACK and the initial SUBSCRIBE).
	DefaultConnectTimeout = 30 * time.Second
)

// Option configures a Client at construction.
type Option func(*settings) error

// settings holds everything an Option can change. Defaults are applied once,
// in newSettings.
type settings struct {
	rootCAs          *x509.CertPool
	webSockets       bool
	keepAlive        time.Duration
	logger           *slog.Logger
	retry            RetryPolicy
	modelID          string
	productInfo      string
	tokenLifetime    time.Duration
	tokenRenewMargin time.Duration
	opTimeout        time.Duration
	connectTimeout   time.Duration
	cert             *tls.Certificate
	httpsHost        string       // WithHTTPSHost
	storageHTTP      *http.Client // WithStorageHTTPClient
}

func newSettings(opts []Option) (*settings, error) {
	s := &settings{
		keepAlive:        DefaultKeepAlive,
		logger:           slog.New(slog.DiscardHandler),
		retry:            ExponentialBackoff{},
		tokenLifetime:    DefaultTokenLifetime,
		tokenRenewMargin: DefaultTokenRenewMargin,
		opTimeout:        DefaultOperationTimeout,
		connectTimeout:   DefaultConnectTimeout,
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// renewMargin returns how long before expiry a generated token is renewed:
// the configured margin, or a quarter of the lifetime when the margin would
// leave no useful validity.
func (s *settings) renewMargin() time.Duration {
	if s.tokenRenewMargin <= 0 || s.tokenRenewMargin >= s.tokenLifetime {
		return s.tokenLifetime / 4
	}
	return s.tokenRenewMargin
}

// WithRootCAs sets the certificate pool used to verify the hub. The default
// is the system pool.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(s *settings) error {
		s.rootCAs = pool
		return nil
	}
}

// WithCAFile verifies the hub with the PEM certificates in path (for example
// the emulator's CA) instead of the system pool. It replaces any pool set
// earlier.
func WithCAFile(path string) Option {
	return func(s *settings) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("device: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("device: CA file %s holds no PEM certificate", path)
		}
		s.rootCAs = pool
		return nil
	}
}

// WithWebSockets selects MQTT over WebSockets:
// wss://{host}:443/$iothub/websocket with subprotocol "mqtt".
func WithWebSockets() Option {
	return func(s *settings) error {
		s.webSockets = true
		return nil
	}
}

// WithKeepAlive sets the MQTT keep-alive interval (whole seconds; the hub
// allows at most 1177 s). The default is DefaultKeepAlive.
func WithKeepAlive(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second || d > 1177*time.Second {
			return fmt.Errorf("device: keep-alive %v out of range [1s, 1177s]", d)
		}
		s.keepAlive = d
		return nil
	}
}

// WithLogger sets the logger for connection events. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return errors.New("device: nil logger")
		}
		s.logger = l
		return nil
	}
}

// WithRetryPolicy sets the policy for reconnecting after the connection
// drops. The default is ExponentialBackoff{}.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(s *settings) error {
		if p == nil {
			return errors.New("device: nil retry policy")
		}
		s.retry = p
		return nil
	}
}

// WithoutRetries disables reconnection: after a drop the client reports
// StateDisconnected at once and operations fail with ErrNotConnected until
// the application calls Connect again. Token renewals, which the client
// makes itself, still reconnect. Tests against an emulator can use it so
// that drops are not hidden.
func WithoutRetries() Option {
	return WithRetryPolicy(noRetry{})
}

// WithModelID announces an IoT Plug and Play model (a DTMI); it is sent as
// model-id in the MQTT username and becomes the twin's modelId.
func WithModelID(dtmi string) Option {
	return func(s *settings) error {
		s.modelID = dtmi
		return nil
	}
}

// WithProductInfo appends text to the user agent sent as DeviceClientType,
// as the official SDKs' product_info / productInfo option does.
func WithProductInfo(info string) Option {
	return func(s *settings) error {
		s.productInfo = info
		return nil
	}
}

// WithTokenLifetime sets the validity of SAS tokens generated from a shared
// access key. The default is DefaultTokenLifetime.
func WithTokenLifetime(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second {
			return fmt.Errorf("device: token lifetime %v shorter than 1s", d)
		}
		s.tokenLifetime = d
		return nil
	}
}

// WithTokenRenewMargin sets how long before expiry a generated SAS token is
// replaced by reconnecting with a fresh one. A margin not shorter than the
// lifetime means a quarter of the lifetime. The default is
// DefaultTokenRenewMargin.
func WithTokenRenewMargin(d time.Duration) Option {
	return func(s *settings) error {
		s.tokenRenewMargin = d
		return nil
	}
}

// WithOperationTimeout bounds twin requests and telemetry sends, including
// time spent waiting for a reconnect; 0 leaves only the caller's context.
// The default is DefaultOperationTimeout.
func WithOperationTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d < 0 {
			return fmt.Errorf("device: negative operation timeout %v", d)
		}
		s.opTimeout = d
		return nil
	}
}

// WithConnectTimeout bounds a single connection attempt. The default is
// DefaultConnectTimeout.
func WithConnectTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("device: connect timeout %v not positive", d)
		}
		s.connectTimeout = d
		return nil
	}
}

// WithX509Certificate sets the client certificate for X.509 authentication.
// It is required with a connection string that has x509=true.
func WithX509Certificate(cert tls.Certificate) Option {
	return func(s *settings) error {
		if len(cert.Certificate) == 0 {
			return errors.New("device: empty X.509 certificate")
		}
		s.cert = &cert
		return nil
	}
}
