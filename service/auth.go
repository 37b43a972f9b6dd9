// SPDX-License-Identifier: MIT

package service

import (
	"fmt"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
)

// credential yields the Authorization header value for a request, and
// the tokens an AMQP connection puts on $cbs.
type credential interface {
	authorization(now time.Time) (string, error)
	// sasToken returns a token for resource (an AMQP audience) and its
	// expiry.
	sasToken(resource string, now time.Time) (string, time.Time, error)
}

// policyKey mints SAS tokens from a shared access policy key. Node re-signs
// on every call (azure-iot-http-base rest_api_client.js, extend(anHourFromNow()));
// we cache the token and renew it when a quarter of its lifetime is left,
// as Node's device client does (renewal 15 minutes before a 60-minute
// expiry), which saves an HMAC per call and keeps the header stable.
type policyKey struct {
	resource string // unencoded sr: the host without port
	keyName  string
	key      string
	lifetime time.Duration

	mu     sync.Mutex
	token  string
	expiry time.Time
}

func (p *policyKey) authorization(now time.Time) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.token != "" && now.Before(p.expiry.Add(-p.lifetime/4)) {
		return p.token, nil
	}
	expiry := now.Add(p.lifetime)
	tok, err := sas.NewToken(p.resource, p.keyName, p.key, expiry)
	if err != nil {
		return "", fmt.Errorf("service: %w", err)
	}
	p.token, p.expiry = tok, expiry
	return tok, nil
}

func (p *policyKey) sasToken(resource string, now time.Time) (string, time.Time, error) {
	expiry := now.Add(p.lifetime)
	tok, err := sas.NewToken(resource, p.keyName, p.key, expiry)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("service: %w", err)
	}
	return tok, expiry, nil
}

// staticToken is a ready-made token used as is.
type staticToken string

func newStaticToken(token string) (staticToken, error) {
	if _, err := sas.ParseToken(token); err != nil {
		return "", fmt.Errorf("service: %w", err)
	}
	return staticToken(token), nil
}

func (t staticToken) authorization(time.Time) (string, error) { return string(t), nil }

// sasToken returns the token itself when it covers resource: it cannot
// sign for another (an event hub's audience needs the policy key).
func (t staticToken) sasToken(resource string, _ time.Time) (string, time.Time, error) {
	pt, err := sas.ParseToken(string(t))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("service: %w", err)
	}
	if !pt.Covers(resource) {
		return "", time.Time{}, fmt.Errorf("service: the client's SAS token is for %s and cannot authorize %s; build the client from a connection string with a key", pt.Resource, resource)
	}
	return string(t), pt.Expiry, nil
}
