// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/wire"
)

// APIVersion is the REST api-version every request carries, the one the
// Node, C# and Java service SDKs send (azure-iothub dist/version.js).
const APIVersion = wire.APIVersion

// DefaultUserAgent is the User-Agent header sent unless WithUserAgent
// replaces it: "iothub-go-service/<version> (<go version>; <os>; <arch>)",
// shaped like the device client's and the Node SDKs' user agents.
var DefaultUserAgent = wire.UserAgent("iothub-go-service")

// DefaultTokenLifetime is how long the SAS tokens minted from a policy key
// stay valid, the 60 minutes every Azure SDK uses.
const DefaultTokenLifetime = time.Hour

// Client talks to an IoT hub's service REST API (or to the emulator) on
// behalf of a shared access policy. It is safe for concurrent use.
type Client struct {
	host      string // HostName as configured, possibly with ":port"
	http      *http.Client
	cred      credential
	retry     RetryPolicy
	log       *slog.Logger
	userAgent string

	// AMQP (amqp.go): how to reach the hub, and the connection shared by
	// the cloud-to-device sender and the receivers.
	tlsConfig  *tls.Config
	webSockets bool
	amqpAddr   string
	amqpMu     sync.Mutex // guards the fields below
	dialMu     sync.Mutex // held while dialing the hub; never while holding amqpMu
	amqpClosed bool
	hub        *amqpConn
	c2d        *amqp.Sender      // on hub; nil until the first SendC2D
	ehEndpoint *EventHubEndpoint // the redirect's answer, once known

	// Seams for tests: the clock used for token expiry and Retry-After
	// dates, and the wait between attempts.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// Option configures a Client.
type Option func(*config)

type config struct {
	rootCAs       *x509.CertPool
	httpClient    *http.Client
	logger        *slog.Logger
	retry         RetryPolicy
	userAgent     string
	tokenLifetime time.Duration
	webSockets    bool
	amqpAddr      string
	tlsConfig     *tls.Config // for AMQP: from rootCAs or the HTTP client's transport
}

// WithRootCAs makes the client trust the certificates in pool instead of the
// system roots, for an emulator with a self-signed certificate. It cannot be
// combined with WithHTTPClient; configure that client's transport instead.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *config) { c.rootCAs = pool }
}

// WithHTTPClient makes the client send its requests through hc. Leave
// hc.Timeout at zero: calls are bounded by their contexts, and direct
// methods need up to five minutes or more.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) { c.httpClient = hc }
}

// WithLogger makes the client log each request at debug level, and retries
// at info level, to l. Tokens are never logged. The default discards logs.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithRetryPolicy sets the policy for repeating failed calls. The default
// is ExponentialBackoff{}. See RetryPolicy for which calls are retried.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *config) { c.retry = p }
}

// WithoutRetries disables retries: every call makes exactly one attempt.
// Tests against an emulator should use it so that server bugs are not
// hidden.
func WithoutRetries() Option {
	return WithRetryPolicy(noRetry{})
}

// WithUserAgent replaces DefaultUserAgent as the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *config) { c.userAgent = ua }
}

// WithTokenLifetime sets the validity of the SAS tokens minted from a policy
// key (default DefaultTokenLifetime). Tokens are reused and replaced when a
// quarter of their lifetime remains. It has no effect on a client built from
// a ready-made token.
func WithTokenLifetime(d time.Duration) Option {
	return func(c *config) { c.tokenLifetime = d }
}

// NewFromConnectionString returns a client for the shared access policy in
// cs, for example
//
//	HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=...
//
// Any policy works; the hub refuses the calls its permissions do not cover.
// A SharedAccessSignature item may replace the key; the client then uses
// that token as is until it expires. A ":port" on HostName is used for the
// connection but left out of the token's resource, which is what an
// emulator on a non-standard port expects.
func NewFromConnectionString(cs string, opts ...Option) (*Client, error) {
	parsed, err := sas.ParseConnectionString(cs)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if parsed.Kind() != sas.KindService {
		return nil, fmt.Errorf("service: connection string is for a %s, not a shared access policy (want HostName, SharedAccessKeyName and SharedAccessKey)", parsed.Kind())
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var cred credential
	if parsed.SharedAccessSignature != "" {
		if cred, err = newStaticToken(parsed.SharedAccessSignature); err != nil {
			return nil, err
		}
	} else {
		pk := &policyKey{
			resource: sas.ResourceURI(parsed.HostName, "", ""),
			keyName:  parsed.SharedAccessKeyName,
			key:      parsed.SharedAccessKey,
			lifetime: cfg.tokenLifetime,
		}
		// Mint once now so that a bad key fails here rather than on the
		// first call.
		if _, err := sas.NewToken(pk.resource, pk.keyName, pk.key, time.Now().Add(pk.lifetime)); err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
		cred = pk
	}
	return newClient(parsed.HostName, cred, cfg), nil
}

// NewFromSASToken returns a client that authenticates with token, a
// ready-made "SharedAccessSignature sr=...&sig=...&se=...[&skn=...]" token,
// against the hub at host (a host name, optionally with ":port"). The
// client cannot renew the token; once it expires calls fail with a 401.
func NewFromSASToken(host, token string, opts ...Option) (*Client, error) {
	if host == "" || strings.ContainsAny(host, "/ ") {
		return nil, fmt.Errorf("service: invalid host %q; want a host name with an optional :port", host)
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	cred, err := newStaticToken(token)
	if err != nil {
		return nil, err
	}
	return newClient(host, cred, cfg), nil
}

func newConfig(opts []Option) (*config, error) {
	cfg := &config{
		retry:         ExponentialBackoff{},
		userAgent:     DefaultUserAgent,
		tokenLifetime: DefaultTokenLifetime,
	}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.retry == nil {
		return nil, errors.New("service: nil retry policy")
	}
	if cfg.rootCAs != nil && cfg.httpClient != nil {
		return nil, errors.New("service: WithRootCAs and WithHTTPClient cannot be combined; set RootCAs on the HTTP client's transport")
	}
	if cfg.tokenLifetime <= 0 {
		return nil, fmt.Errorf("service: token lifetime %v must be positive", cfg.tokenLifetime)
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.webSockets && cfg.amqpAddr != "" {
		return nil, errors.New("service: WithWebSockets and WithAMQPAddr cannot be combined; WithAMQPAddr is for AMQP over TLS")
	}
	if cfg.amqpAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.amqpAddr); err != nil {
			return nil, fmt.Errorf("service: WithAMQPAddr(%q): want host:port", cfg.amqpAddr)
		}
	}
	cfg.tlsConfig = &tls.Config{RootCAs: cfg.rootCAs, MinVersion: tls.VersionTLS12}
	if cfg.httpClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg.tlsConfig.Clone()
		cfg.httpClient = &http.Client{Transport: t}
	} else if t, ok := cfg.httpClient.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		// AMQP trusts what the caller's HTTP client trusts.
		cfg.tlsConfig = t.TLSClientConfig.Clone()
	}
	return cfg, nil
}

func newClient(host string, cred credential, cfg *config) *Client {
	return &Client{
		host:       host,
		http:       cfg.httpClient,
		cred:       cred,
		retry:      cfg.retry,
		log:        cfg.logger,
		userAgent:  cfg.userAgent,
		tlsConfig:  cfg.tlsConfig,
		webSockets: cfg.webSockets,
		amqpAddr:   cfg.amqpAddr,
		now:        time.Now,
		sleep:      sleepContext,
	}
}

// HostName returns the hub host the client connects to, with the port if
// one was configured. It is the HostName to put in device connection
// strings.
func (c *Client) HostName() string { return c.host }
