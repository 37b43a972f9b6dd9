// SPDX-License-Identifier: MIT

package provisioning

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// GlobalEndpoint is the Device Provisioning Service's global device
// endpoint, the provisioning host of every real DPS instance.
const GlobalEndpoint = "global.azure-devices-provisioning.net"

// APIVersion is the device API version the official SDKs send
// (azure-iot-provisioning-device ProvisioningDeviceConstants.apiVersion,
// Python's PROVISIONING_API_VERSION).
const APIVersion = "2019-03-31"

// Defaults, after the official SDKs.
const (
	// DefaultPollingInterval is the wait between status queries when the
	// service sends no retry-after (Node's defaultPollingInterval).
	DefaultPollingInterval = 2 * time.Second
	// DefaultRequestTimeout bounds one request and its answer (Node's
	// defaultTimeoutInterval).
	DefaultRequestTimeout = 30 * time.Second
	// DefaultTokenLifetime is the validity of the registration SAS token
	// (Python's sastoken_ttl).
	DefaultTokenLifetime = time.Hour
	// DefaultKeepAlive is the MQTT keep-alive (Python's).
	DefaultKeepAlive = 60 * time.Second
)

// Transport is the protocol a Client registers over.
type Transport int

// The transports.
const (
	MQTT           Transport = iota // MQTT 3.1.1 over TLS, port 8883
	MQTTWebSockets                  // MQTT over WebSockets, wss://{host}:443/$iothub/websocket
	HTTPS                           // the REST device API, port 443
)

// String names the transport.
func (t Transport) String() string {
	switch t {
	case MQTT:
		return "MQTT"
	case MQTTWebSockets:
		return "MQTT over WebSockets"
	case HTTPS:
		return "HTTPS"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// Option configures a Client at construction.
type Option func(*settings) error

// settings holds everything an Option can change; defaults are applied in
// newSettings.
type settings struct {
	transport      Transport
	rootCAs        *x509.CertPool
	logger         *slog.Logger
	payload        json.RawMessage
	pollInterval   time.Duration
	requestTimeout time.Duration
	tokenLifetime  time.Duration
	keepAlive      time.Duration
	productInfo    string
}

func newSettings(opts []Option) (*settings, error) {
	s := &settings{
		transport:      MQTT,
		logger:         slog.New(slog.DiscardHandler),
		pollInterval:   DefaultPollingInterval,
		requestTimeout: DefaultRequestTimeout,
		tokenLifetime:  DefaultTokenLifetime,
		keepAlive:      DefaultKeepAlive,
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

// WithTransport selects the protocol; the default is MQTT.
func WithTransport(t Transport) Option {
	return func(s *settings) error {
		if t < MQTT || t > HTTPS {
			return fmt.Errorf("provisioning: unknown transport %d", int(t))
		}
		s.transport = t
		return nil
	}
}

// WithRootCAs sets the certificate pool that verifies the service; the
// default is the system pool.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(s *settings) error {
		s.rootCAs = pool
		return nil
	}
}

// WithCAFile verifies the service with the PEM certificates in path, such
// as the emulator's CA certificate.
func WithCAFile(path string) Option {
	return func(s *settings) error {
		pem, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("provisioning: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("provisioning: CA file %s holds no PEM certificate", path)
		}
		s.rootCAs = pool
		return nil
	}
}

// WithPayload sends v, marshalled to JSON, as the registration's custom
// payload, which a custom allocation policy receives (Python's
// provisioning_payload, Node's setProvisioningPayload).
func WithPayload(v any) Option {
	return func(s *settings) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("provisioning: payload: %w", err)
		}
		s.payload = b
		return nil
	}
}

// WithPollingInterval sets the wait between status queries when the
// service sends no retry-after. The default is DefaultPollingInterval.
func WithPollingInterval(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("provisioning: polling interval %v not positive", d)
		}
		s.pollInterval = d
		return nil
	}
}

// WithRequestTimeout bounds one request and its answer (connect included
// for MQTT). The default is DefaultRequestTimeout; the whole registration
// is bounded by Register's context.
func WithRequestTimeout(d time.Duration) Option {
	return func(s *settings) error {
		if d <= 0 {
			return fmt.Errorf("provisioning: request timeout %v not positive", d)
		}
		s.requestTimeout = d
		return nil
	}
}

// WithTokenLifetime sets the validity of the registration SAS token of a
// symmetric-key client. The default is DefaultTokenLifetime.
func WithTokenLifetime(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second {
			return fmt.Errorf("provisioning: token lifetime %v shorter than 1s", d)
		}
		s.tokenLifetime = d
		return nil
	}
}

// WithKeepAlive sets the MQTT keep-alive. The default is DefaultKeepAlive.
func WithKeepAlive(d time.Duration) Option {
	return func(s *settings) error {
		if d < time.Second {
			return fmt.Errorf("provisioning: keep-alive %v shorter than 1s", d)
		}
		s.keepAlive = d
		return nil
	}
}

// WithLogger sets the logger for the registration's steps. The default
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *settings) error {
		if l == nil {
			return errors.New("provisioning: nil logger")
		}
		s.logger = l
		return nil
	}
}

// WithProductInfo appends text to the user agent sent as ClientVersion
// (MQTT) and User-Agent (HTTPS).
func WithProductInfo(info string) Option {
	return func(s *settings) error {
		s.productInfo = info
		return nil
	}
}
