// SPDX-License-Identifier: MIT

// Package iothub is a Testcontainers module for the IoT Hub emulator: one
// call starts the emulator's container image, waits until it is healthy and
// returns what a test needs to use it, namely the service connection
// string, device connection strings and the CA to trust.
//
//	ctr, err := iothub.Run(ctx, "iothub-emulator:local")
//	defer testcontainers.TerminateContainer(ctr)
//	svc, _ := service.NewFromConnectionString(ctr.ConnectionString(), service.WithRootCAs(ctr.CAPool()))
//	devConn, _ := ctr.DeviceConnectionString(ctx, "thermostat-1") // registered if needed
//	dev, _ := device.NewFromConnectionString(devConn, device.WithRootCAs(ctr.CAPool()))
//
// The container's ports 443 and 8883 are published on random host ports,
// which the connection strings carry (HostName=localhost:49153): the
// module's own Go clients honour such a port; the official Node, Python,
// C# and Java SDKs always dial 443 and 8883 and need the fixed ports of
// docker compose instead.
//
// It lives in a Go module of its own so that depending on the emulator's
// clients does not pull in Docker's client libraries.
package iothub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// The container's ports: HTTPS (REST, MQTT over WebSockets, /health) and
// MQTT over TLS.
const (
	HTTPSPort = "443/tcp"
	MQTTPort  = "8883/tcp"
)

// Container is a running emulator.
type Container struct {
	*testcontainers.DockerContainer

	httpsHost string // host:mapped 443
	mqttHost  string // host:mapped 8883
	ownerKey  string
	caPEM     []byte
	pool      *x509.CertPool
}

// Run starts the emulator image img (built from this repository's
// Dockerfile, e.g. "iothub-emulator:local"), waits until /health answers,
// and reads its CA. opts customise the container as for any Testcontainers
// module, e.g. testcontainers.WithEnv(map[string]string{"IOTHUB_LOG_LEVEL": "debug"}).
// On error the container, if one was created, is returned too, so that
// the caller can terminate it.
func Run(ctx context.Context, img string, opts ...testcontainers.ContainerCustomizer) (*Container, error) {
	// The host where the ports are published goes into the certificate and
	// the accepted SAS hosts, so that it also works when Docker runs
	// elsewhere (DOCKER_HOST=tcp://...).
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return nil, fmt.Errorf("iothub: docker: %w", err)
	}
	host, err := p.DaemonHost(ctx)
	p.Close()
	if err != nil {
		return nil, fmt.Errorf("iothub: docker host: %w", err)
	}
	env := map[string]string{"IOTHUB_HOSTNAME": "localhost"}
	if !strings.EqualFold(host, "localhost") {
		env["IOTHUB_TLS_SANS"] = host
	}
	all := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(HTTPSPort, MQTTPort),
		testcontainers.WithEnv(env),
		testcontainers.WithWaitStrategy(
			// Liveness only: the CA is read and checked afterwards.
			wait.ForHTTP("/health").WithPort(HTTPSPort).
				WithTLS(true, &tls.Config{InsecureSkipVerify: true}).
				WithStartupTimeout(60 * time.Second).
				WithPollInterval(100 * time.Millisecond),
		),
	}
	all = append(all, opts...)
	var ownerKey string
	all = append(all, testcontainers.CustomizeRequestOption(func(req *testcontainers.GenericContainerRequest) error {
		ownerKey = req.Env["IOTHUB_OWNER_KEY"]
		return nil
	}))
	ctr, err := testcontainers.Run(ctx, img, all...)
	var c *Container
	if ctr != nil {
		c = &Container{DockerContainer: ctr, ownerKey: ownerKey}
	}
	if err != nil {
		return c, fmt.Errorf("iothub: run %s: %w", img, err)
	}
	if c.ownerKey == "" {
		c.ownerKey = emulator.WellKnownOwnerKey
	}
	if c.httpsHost, err = ctr.PortEndpoint(ctx, HTTPSPort, ""); err != nil {
		return c, fmt.Errorf("iothub: %w", err)
	}
	if c.mqttHost, err = ctr.PortEndpoint(ctx, MQTTPort, ""); err != nil {
		return c, fmt.Errorf("iothub: %w", err)
	}
	if err := c.readCA(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// readCA fetches the emulator's CA from GET /emulator/ca.pem, then checks
// it: a verified request must succeed with it, so that what the tests
// trust is what serves them.
func (c *Container) readCA(ctx context.Context) error {
	url := "https://" + c.httpsHost
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	pemBytes, err := get(ctx, insecure, url+"/emulator/ca.pem")
	if err != nil {
		return fmt.Errorf("iothub: reading the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return errors.New("iothub: /emulator/ca.pem holds no PEM certificate")
	}
	verified := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if _, err := get(ctx, verified, url+"/health"); err != nil {
		return fmt.Errorf("iothub: the served CA does not verify the emulator's certificate: %w", err)
	}
	c.caPEM, c.pool = pemBytes, pool
	return nil
}

func get(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return b, nil
}

// ConnectionString is the iothubowner service connection string. Its
// HostName carries the published HTTPS port.
func (c *Container) ConnectionString() string {
	return "HostName=" + c.httpsHost + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + c.ownerKey
}

// CAPool trusts the emulator's CA (service.WithRootCAs, device.WithRootCAs).
func (c *Container) CAPool() *x509.CertPool { return c.pool }

// CAPEM is the emulator's CA certificate, PEM-encoded, for clients that
// read a file (NODE_EXTRA_CA_CERTS, IOTHUB_CA_FILE).
func (c *Container) CAPEM() []byte { return c.caPEM }

// MQTTHost is host:port of MQTT over TLS (the container's 8883).
func (c *Container) MQTTHost() string { return c.mqttHost }

// HTTPSHost is host:port of HTTPS (the container's 443): the REST API, and
// MQTT over WebSockets (device.WithWebSockets with this HostName).
func (c *Container) HTTPSHost() string { return c.httpsHost }

// Service returns a service client for the emulator, trusting its CA.
func (c *Container) Service(opts ...service.Option) (*service.Client, error) {
	return service.NewFromConnectionString(c.ConnectionString(), append([]service.Option{service.WithRootCAs(c.pool)}, opts...)...)
}

// DeviceConnectionString returns the connection string of device id,
// registering it (with generated SAS keys) when it does not exist. Its
// HostName carries the published MQTT port; for MQTT over WebSockets,
// replace it with HTTPSHost.
func (c *Container) DeviceConnectionString(ctx context.Context, id string) (string, error) {
	svc, err := c.Service(service.WithoutRetries())
	if err != nil {
		return "", err
	}
	d, err := svc.GetDevice(ctx, id)
	if errors.Is(err, service.ErrNotFound) {
		d, err = svc.CreateDevice(ctx, &service.Device{DeviceID: id})
		if errors.Is(err, service.ErrAlreadyExists) {
			d, err = svc.GetDevice(ctx, id) // created meanwhile
		}
	}
	if err != nil {
		return "", fmt.Errorf("iothub: device %s: %w", id, err)
	}
	return service.DeviceConnectionString(c.mqttHost, d)
}
