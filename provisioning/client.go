// SPDX-License-Identifier: MIT

package provisioning

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/internal/wire"
)

// sdkName is the product in the user agent.
const sdkName = "iothub-go-provisioning"

// Client registers one device with the provisioning service. A Client may
// register repeatedly; each Register is one registration, and calls are
// serialized.
type Client struct {
	host           string // provisioning host, possibly with ":port"
	idScope        string
	registrationID string
	cred           credential
	set            *settings
	log            *slog.Logger

	sem chan struct{} // one Register at a time
}

// NewFromSymmetricKey returns a client for a device that attests with a
// symmetric key: its individual enrollment's key, or the key derived from
// its group's (DeriveDeviceKey). host is the provisioning host:
// GlobalEndpoint for the real service.
func NewFromSymmetricKey(host, idScope, registrationID, key string, opts ...Option) (*Client, error) {
	if key == "" {
		return nil, errors.New("provisioning: empty symmetric key")
	}
	if _, err := sas.NewToken("x", "", key, time.Now()); err != nil {
		return nil, fmt.Errorf("provisioning: symmetric key: %w", err)
	}
	return newClient(host, idScope, registrationID, credential{key: key}, opts)
}

// NewFromX509Certificate returns a client for a device that attests with
// an X.509 certificate, whose subject common name is the registration id.
// The certificate is presented in the TLS handshake; for a group, include
// the intermediate CAs in cert.Certificate after the leaf.
func NewFromX509Certificate(host, idScope, registrationID string, cert tls.Certificate, opts ...Option) (*Client, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("provisioning: empty X.509 certificate")
	}
	return newClient(host, idScope, registrationID, credential{cert: &cert}, opts)
}

func newClient(host, idScope, registrationID string, cred credential, opts []Option) (*Client, error) {
	switch {
	case host == "":
		return nil, errors.New("provisioning: empty provisioning host")
	case idScope == "":
		return nil, errors.New("provisioning: empty ID scope")
	case registrationID == "":
		return nil, errors.New("provisioning: empty registration id")
	}
	set, err := newSettings(opts)
	if err != nil {
		return nil, err
	}
	return &Client{host: host, idScope: idScope, registrationID: registrationID, cred: cred, set: set, log: set.logger,
		sem: make(chan struct{}, 1)}, nil
}

// DeriveDeviceKey returns the key a device of a symmetric-key enrollment
// group registers with: base64(HMAC-SHA256(groupKey, registrationID)), as
// the DPS documentation derives it.
func DeriveDeviceKey(groupKey, registrationID string) (string, error) {
	return sas.DeriveDeviceKey(groupKey, registrationID)
}

// Register registers the device and waits until the service has assigned
// it or failed. A failed registration returns the result and an *Error
// matching ErrRegistrationFailed; the service refusing the request (bad
// credentials, malformed request) returns an *Error alone. ctx bounds the
// whole registration, polling included.
func (c *Client) Register(ctx context.Context) (*RegistrationResult, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	t, err := c.newTransport()
	if err != nil {
		return nil, err
	}
	defer t.close()
	body, err := json.Marshal(struct {
		RegistrationID string          `json:"registrationId"`
		Payload        json.RawMessage `json:"payload,omitempty"`
	}{c.registrationID, c.set.payload})
	if err != nil {
		return nil, err
	}
	opID := ""
	for {
		op, status := "Register", 0
		var a *answer
		if opID == "" {
			a, err = t.register(ctx, body)
		} else {
			op = "OperationStatus"
			a, err = t.status(ctx, opID)
		}
		if err != nil {
			return nil, err
		}
		status = a.status
		wait := c.set.pollInterval
		if a.retryAfter > 0 {
			wait = a.retryAfter
		}
		switch {
		case status >= 429:
			// Throttled or a server error: ask again after the wait, as
			// Node's transports turn these answers into "registering" or
			// "assigning".
			c.log.Debug("provisioning: retrying after an error answer", "op", op, "status", status, "wait", wait)
		case status >= 300:
			return nil, answerError(op, status, a.header, a.body)
		default:
			var w wireOperation
			if err := json.Unmarshal(a.body, &w); err != nil {
				return nil, fmt.Errorf("provisioning: %s: the answer is not an operation: %w", op, err)
			}
			c.log.Debug("provisioning: answer", "op", op, "status", w.Status, "operationId", w.OperationID)
			switch strings.ToLower(w.Status) {
			case StatusAssigned:
				return c.result(&w), nil
			case StatusFailed, StatusDisabled:
				res := c.result(&w)
				st := res.RegistrationState
				e := &Error{Op: op, StatusCode: st.ErrorCode / 1000, Code: st.ErrorCode, Message: st.ErrorMessage, Failed: true, Body: a.body}
				if e.Message == "" {
					e.Message = "the registration's status is " + w.Status
				}
				return res, e
			case StatusAssigning, StatusUnassigned:
				if w.OperationID == "" {
					return nil, fmt.Errorf("provisioning: %s: status %q without an operation id", op, w.Status)
				}
				opID = w.OperationID
			default:
				return nil, fmt.Errorf("provisioning: %s: unknown status %q", op, w.Status)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
	}
}

func (c *Client) result(w *wireOperation) *RegistrationResult {
	r := &RegistrationResult{OperationID: w.OperationID, Status: strings.ToLower(w.Status), cred: c.cred}
	if w.RegistrationState != nil {
		r.RegistrationState = w.RegistrationState.state()
	}
	if r.RegistrationState.RegistrationID == "" {
		r.RegistrationState.RegistrationID = c.registrationID
	}
	return r
}

// answer is one answer of the service, whatever the transport.
type answer struct {
	status     int
	retryAfter time.Duration
	header     http.Header // HTTPS only
	body       []byte
}

// transport sends the two requests of a registration.
type transport interface {
	register(ctx context.Context, body []byte) (*answer, error)
	status(ctx context.Context, operationID string) (*answer, error)
	close()
}

func (c *Client) newTransport() (transport, error) {
	if c.set.transport == HTTPS {
		return newHTTPSTransport(c), nil
	}
	return newMQTTTransport(c), nil
}

// token returns a fresh registration SAS token, "" for X.509: resource
// {idScope}/registrations/{registrationId}, key name "registration".
func (c *Client) token() (string, error) {
	if c.cred.key == "" {
		return "", nil
	}
	return sas.NewToken(sas.RegistrationResource(c.idScope, c.registrationID), sas.RegistrationKeyName, c.cred.key, time.Now().Add(c.set.tokenLifetime))
}

// userAgent is sent as ClientVersion (MQTT) and User-Agent (HTTPS).
func (c *Client) userAgent() string { return wire.UserAgent(sdkName) + c.set.productInfo }

// address returns host:port to dial and the TLS server name; a port in
// the host wins over the transport's default.
func (c *Client) address(defaultPort string) (addr, serverName string) {
	host, port, err := net.SplitHostPort(c.host)
	if err != nil {
		host, port = c.host, defaultPort
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.JoinHostPort(host, port), host
}

// tlsConfig is TLS 1.2 or later, the configured roots, and the X.509
// identity if any.
func (c *Client) tlsConfig(serverName string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.set.rootCAs, ServerName: serverName}
	if c.cred.cert != nil {
		cfg.Certificates = []tls.Certificate{*c.cred.cert}
	}
	return cfg
}

// parseRetryAfter reads a retry-after value in whole seconds.
func parseRetryAfter(v string) time.Duration {
	var n int
	if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &n); err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
