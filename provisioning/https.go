// SPDX-License-Identifier: MIT

package provisioning

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/iothubemulator/iothub/internal/wire"
)

// httpsTransport is the REST device API (Node azure-iot-provisioning-device-http):
// PUT /{idScope}/registrations/{registrationId}/register and
// GET .../operations/{operationId}, api-version 2019-03-31, with the SAS
// token in Authorization or the certificate in the TLS handshake.
type httpsTransport struct {
	c      *Client
	base   string
	client *http.Client
}

func newHTTPSTransport(c *Client) *httpsTransport {
	addr, serverName := c.address("443")
	tr := &http.Transport{TLSClientConfig: c.tlsConfig(serverName), Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	return &httpsTransport{
		c:      c,
		base:   "https://" + addr + "/" + url.PathEscape(c.idScope) + "/registrations/" + url.PathEscape(c.registrationID),
		client: &http.Client{Transport: tr, Timeout: c.set.requestTimeout},
	}
}

func (t *httpsTransport) register(ctx context.Context, body []byte) (*answer, error) {
	return t.do(ctx, "Register", http.MethodPut, t.base+"/register?api-version="+APIVersion, body)
}

func (t *httpsTransport) status(ctx context.Context, operationID string) (*answer, error) {
	return t.do(ctx, "OperationStatus", http.MethodGet, t.base+"/operations/"+url.PathEscape(operationID)+"?api-version="+APIVersion, nil)
}

func (t *httpsTransport) do(ctx context.Context, op, method, u string, body []byte) (*answer, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", t.c.userAgent())
	tok, err := t.c.token()
	if err != nil {
		return nil, fmt.Errorf("provisioning: token: %w", err)
	}
	if tok != "" {
		req.Header.Set("Authorization", tok)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("provisioning: %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("provisioning: %s: read answer: %w", op, err)
	}
	return &answer{status: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After")), header: resp.Header, body: b}, nil
}

func (t *httpsTransport) close() { t.client.CloseIdleConnections() }
