// SPDX-License-Identifier: MIT

package emulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqpapi"
	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/dps"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/metrics"
	"github.com/iothubemulator/iothub/emulator/internal/mqttapi"
	"github.com/iothubemulator/iothub/emulator/internal/netlimit"
	"github.com/iothubemulator/iothub/emulator/internal/restapi"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/ui"
	"github.com/iothubemulator/iothub/internal/sas"
)

// Server is an emulated IoT Hub: the hub core, its store, an MQTT over TLS
// listener, AMQP listeners (TLS and plain) and an HTTPS listener (REST API,
// MQTT and AMQP over WebSockets), and the Device Provisioning Service on
// the same host and listeners.
type Server struct {
	opts  Options
	db    *store.DB
	hub   *hub.Hub
	dps   *dps.Service
	tls   *certs.Material
	mqtt  *mqttapi.Server
	amqp  *amqpapi.Server
	https *http.Server
	hl    net.Listener
	fds   *netlimit.Guard // the open-file limit's guard of every listener
	stats *metrics.Metrics

	reactors reactors      // fault injection; the hub's one Reactor
	throttle throttleState // the throttling switch, one of the reactors (throttle.go)

	ready     atomic.Bool
	active    atomic.Int64 // HTTPS requests in flight (MQTT over WebSockets excluded)
	limits    httpsLimits  // set by New; internal tests shorten them before Start
	closeOnce sync.Once
	closeErr  error
}

// New prepares a Server: it opens the database, loads or generates the TLS
// material and applies the config, but does not listen yet (see Start).
func New(opts Options) (*Server, error) {
	if err := opts.Config.applyFileUpload(&opts); err != nil {
		return nil, err
	}
	opts.setDefaults()
	s := &Server{opts: opts, limits: defaultHTTPSLimits()}
	ok := false
	defer func() {
		if !ok {
			s.closeStore()
			s.fds.Close()
		}
	}()
	s.fds = netlimit.New(netlimit.Options{Logger: opts.Logger})
	s.stats = metrics.New(func() float64 { return float64(s.fds.Refused()) })
	var err error
	if opts.InMemory {
		s.db, err = store.OpenTemp()
	} else {
		s.db, err = store.Open(filepath.Join(opts.DataDir, "iothub.db"), store.Options{LockTimeout: opts.LockTimeout})
	}
	if err != nil {
		return nil, dataDirError(opts.DataDir, err)
	}
	s.db.OnCommit(s.stats.Commit)
	if err := s.loadTLS(); err != nil {
		return nil, err
	}
	policies, err := opts.Config.policies(opts.OwnerKey)
	if err != nil {
		return nil, err
	}
	cas, err := opts.Config.deviceCAs()
	if err != nil {
		return nil, err
	}
	fileUpload, storageHTTP, err := s.storageConfig()
	if err != nil {
		return nil, err
	}
	s.hub, err = hub.New(s.db, hub.Config{
		HostName:   opts.HostName,
		ExtraHosts: opts.TLSSANs,
		Policies:   policies,
		DeviceCAs:  cas,
		Logger:     opts.Logger,
		Clock:      clock.FromFunc(opts.Clock),
		Retention:  hub.RetentionConfig{MaxMessages: opts.TelemetryMaxMessages, MaxAge: opts.TelemetryMaxAge, MaxBytes: opts.TelemetryMaxBytes},
		Partitions: opts.Partitions,

		MaxActiveJobs: opts.MaxConcurrentJobs,

		FileUpload:  fileUpload,
		StorageHTTP: storageHTTP,
		Metrics:     s.stats,
	})
	if err != nil {
		return nil, err
	}
	s.hub.SetReactor(&s.reactors)
	dpsPolicies, err := opts.Config.provisioningPolicies(opts.DPSOwnerKey)
	if err != nil {
		return nil, err
	}
	s.dps, err = dps.New(s.db, dps.Config{
		IDScope:    opts.IDScope,
		HostName:   opts.HostName,
		ExtraHosts: opts.TLSSANs,
		// Devices are told the host name with the MQTT port when it is not
		// 8883, as device connection strings are, so that they reach this
		// hub on random ports too.
		AssignedHub: s.mqttHost,
		Policies:    dpsPolicies,
		Hub:         s.hub,
		Logger:      opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	if err := opts.Config.apply(context.Background(), s.hub); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := opts.Config.applyProvisioning(s.dps); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// Import/export jobs a previous run left unfinished go on.
	if err := s.hub.ResumeImportExportJobs(); err != nil {
		return nil, fmt.Errorf("resume import/export jobs: %w", err)
	}
	ok = true
	return s, nil
}

func (s *Server) loadTLS() error {
	var err error
	if s.opts.TLSCertFile != "" || s.opts.TLSKeyFile != "" {
		if s.opts.TLSCertFile == "" || s.opts.TLSKeyFile == "" {
			return errors.New("tls: give both --tls-cert and --tls-key, or neither")
		}
		s.tls, err = certs.LoadFiles(s.opts.TLSCertFile, s.opts.TLSKeyFile)
		return err
	}
	dir := s.opts.DataDir
	if s.opts.InMemory {
		dir = filepath.Join(filepath.Dir(s.db.Path()), "certs")
	}
	hosts := append([]string{s.opts.HostName}, s.opts.TLSSANs...)
	s.tls, err = certs.Ensure(dir, hosts, time.Now())
	if err != nil {
		return dataDirError(dir, err)
	}
	return nil
}

// dataDirError turns a failure to write the data dir into one line that
// names the directory and the ways out; other errors pass unchanged.
func dataDirError(dir string, err error) error {
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
		return err
	}
	cause := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		cause = pe
	}
	return fmt.Errorf("data dir %s is not writable by this user (%v): give the user write access to it, choose another with --data-dir, or keep nothing with --in-memory", dir, cause)
}

func (s *Server) serverTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{s.tls.Server},
		MinVersion:   tls.VersionTLS12,
		// Devices may authenticate with X.509 client certificates; the hub
		// verifies them (thumbprint or CA chain), not the TLS layer.
		ClientAuth: tls.RequestClientCert,
	}
}

// Start binds both listeners and serves. It fails with a one-line error
// naming the address when a port is taken.
func (s *Server) Start() error {
	hl, err := net.Listen("tcp", s.opts.HTTPSAddr)
	if err != nil {
		return listenError("HTTPS", s.opts.HTTPSAddr, "--https-addr", err)
	}
	hl = s.fds.Listener(hl, netlimit.Service)
	s.hl = hl
	devices := func(l net.Listener) net.Listener { return s.fds.Listener(l, netlimit.Devices) }
	s.mqtt, err = mqttapi.New(mqttapi.Options{Hub: s.hub, DPS: s.dps, Addr: s.opts.MQTTAddr, TLSConfig: s.serverTLS(), Logger: s.opts.Logger,
		WrapListener: devices})
	if err != nil {
		hl.Close()
		return err
	}
	if err := s.mqtt.Start(); err != nil {
		hl.Close()
		return listenError("MQTT", s.opts.MQTTAddr, "--mqtt-addr", err)
	}
	s.amqp = amqpapi.New(amqpapi.Options{Hub: s.hub, TLSConfig: s.serverTLS(), Logger: s.opts.Logger,
		Addr: listenAddr(s.opts.AMQPAddr), PlainAddr: listenAddr(s.opts.AMQPPlainAddr), WrapListener: devices})
	if err := s.amqp.Start(); err != nil {
		hl.Close()
		_ = s.mqtt.Close()
		var le *amqpapi.ListenError
		if errors.As(err, &le) && le.TLS {
			return listenError("AMQP", le.Addr, "--amqp-addr", le.Err)
		} else if errors.As(err, &le) {
			return listenError("plain AMQP", le.Addr, "--amqp-plain-addr", le.Err)
		}
		return err
	}
	amqpWS := s.amqp.WebSocketHandler()
	mqttWS := s.mqtt.WebSocketHandler()
	handler := restapi.New(restapi.Options{
		Hub: s.hub,
		// /$iothub/websocket serves MQTT and AMQP, told apart by the
		// subprotocol the client asks for.
		WebSocket: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if amqpapi.WantsWebSocket(r) {
				amqpWS.ServeHTTP(w, r)
				return
			}
			mqttWS.ServeHTTP(w, r)
		}),
		ServiceBusWebSocket: amqpWS,
		EventHub: func() restapi.EventHubEndpoint {
			return restapi.EventHubEndpoint{Name: s.EventHubName(), ConnectionString: s.EventHubConnectionString(),
				DevelopmentEmulatorConnectionString: s.EventHubEmulatorConnectionString()}
		},
		Ready:        s.ready.Load,
		CAPEM:        s.tls.CAPEM,
		UI:           ui.New(ui.Options{Hub: s.hub, ServiceHost: s.hostWithPort(s.HTTPSAddr(), "443"), DeviceHost: s.mqttHost()}),
		WriteTimeout: s.limits.write,
		BodyTimeout:  s.limits.body,
		DPS:          s.dps,
		Throttler:    throttleControl{s},
		Metrics:      s.stats.Handler(),
	})
	s.https = &http.Server{
		Handler:           s.track(handler),
		TLSConfig:         s.serverTLS(),
		ReadHeaderTimeout: s.limits.readHeader,
		IdleTimeout:       s.limits.idle,
		// A backstop for what the REST pipeline does not see (/health,
		// unknown routes); the pipeline sets each request's own, and a
		// WebSocket upgrade clears it when it takes the connection over.
		WriteTimeout:   s.limits.write,
		MaxHeaderBytes: s.limits.headerBytes,
		// TLS handshake failures (clients that do not trust the CA) are
		// routine for an emulator: log them at debug level, not on stderr.
		ErrorLog: slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.https.ServeTLS(hl, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opts.Logger.Error("https server stopped", "err", err)
		}
	}()
	s.ready.Store(true)
	return nil
}

// httpsLimits bound what a client of the HTTPS port can hold. Headers
// come before authentication, so they are small and quick; the rest is
// per request (restapi's deadlines) or per idle connection.
type httpsLimits struct {
	readHeader  time.Duration // a request's headers must arrive within this
	idle        time.Duration // an idle keep-alive connection is closed after this
	write       time.Duration // an ordinary answer must be written within this (restapi)
	body        time.Duration // a request body must arrive within this (restapi)
	headerBytes int           // request headers, HTTP/2 header lists included
}

func defaultHTTPSLimits() httpsLimits {
	return httpsLimits{
		readHeader: 10 * time.Second,
		idle:       2 * time.Minute,
		write:      restapi.DefaultWriteTimeout,
		body:       restapi.DefaultBodyTimeout,
		// A SAS token is a few hundred bytes; the SDKs send a dozen headers.
		headerBytes: 64 << 10,
	}
}

// track counts requests in flight so that Close can let them finish. A
// WebSocket upgrade is not counted: it becomes an MQTT or AMQP connection,
// which the MQTT or AMQP server closes.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/$iothub/websocket" && r.URL.Path != "/$servicebus/websocket" {
			s.active.Add(1)
			defer s.active.Add(-1)
		}
		h.ServeHTTP(w, r)
	})
}

func listenError(what, addr, flag string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &listenErr{fmt.Sprintf("%s address %s is already in use: stop what listens there or choose another with %s", what, addr, flag), err}
	}
	if errors.Is(err, syscall.EACCES) {
		return &listenErr{fmt.Sprintf("%s address %s needs privileges to bind: run as root, grant CAP_NET_BIND_SERVICE, or choose an unprivileged port with %s", what, addr, flag), err}
	}
	return fmt.Errorf("%s listener on %s: %w", what, addr, err)
}

// listenErr says what to do about a listen failure in one line, and still
// wraps the cause, so errors.Is(err, syscall.EADDRINUSE) holds.
type listenErr struct {
	msg   string
	cause error
}

func (e *listenErr) Error() string { return e.msg }
func (e *listenErr) Unwrap() error { return e.cause }

// Close stops accepting, lets in-flight HTTPS requests finish (up to five
// seconds), disconnects devices and closes the database cleanly.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.ready.Store(false)
		var errs []error
		if s.https != nil {
			// Stop accepting, let requests in flight finish (up to five
			// seconds), then close every connection. Shutdown alone would
			// also wait out HTTP/2's one-second GOAWAY grace on idle
			// connections, which makes every test's cleanup slow.
			done := make(chan error, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			go func() { done <- s.https.Shutdown(ctx) }()
			for s.active.Load() > 0 && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			s.https.Close()
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs = append(errs, err)
			}
			cancel()
		}
		if s.hub != nil {
			// Before devices are disconnected: a job must not see them go
			// offline because the emulator is stopping (it resumes on the
			// next start).
			s.hub.StopJobs()
		}
		if s.mqtt != nil {
			if err := s.mqtt.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.amqp != nil {
			if err := s.amqp.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.hub != nil {
			s.hub.Close()
		}
		if s.fds != nil {
			s.fds.Close()
		}
		errs = append(errs, s.closeStore())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Server) closeStore() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// HostName is the hub host name.
func (s *Server) HostName() string { return s.opts.HostName }

// MQTTAddr is the bound MQTT over TLS address (host:port).
func (s *Server) MQTTAddr() string {
	if s.mqtt == nil {
		return ""
	}
	return s.mqtt.Addr().String()
}

// AMQPAddr is the bound AMQP over TLS address (host:port); "" when off.
func (s *Server) AMQPAddr() string {
	if s.amqp == nil || s.amqp.Addr() == nil {
		return ""
	}
	return s.amqp.Addr().String()
}

// AMQPPlainAddr is the bound plain AMQP address (host:port); "" when off.
func (s *Server) AMQPPlainAddr() string {
	if s.amqp == nil || s.amqp.PlainAddr() == nil {
		return ""
	}
	return s.amqp.PlainAddr().String()
}

// listenAddr maps ListenOff to the adapters' "no listener".
func listenAddr(a string) string {
	if strings.EqualFold(a, ListenOff) {
		return ""
	}
	return a
}

// MetricsHandler serves the emulator's metrics in the Prometheus text
// format, without authentication: mount it where only the operator
// reaches it. The HTTPS port serves the same at GET /metrics to the owner
// policy.
func (s *Server) MetricsHandler() http.Handler { return s.stats.Handler() }

// HTTPSAddr is the bound HTTPS address (host:port).
func (s *Server) HTTPSAddr() string {
	if s.hl == nil {
		return ""
	}
	return s.hl.Addr().String()
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return p
}

// hostWithPort is the host name with the port appended unless it is the
// protocol's default, so that connection strings work on random ports.
func (s *Server) hostWithPort(addr, defaultPort string) string {
	p := portOf(addr)
	if p == "" || p == defaultPort {
		return s.opts.HostName
	}
	return net.JoinHostPort(s.opts.HostName, p)
}

// ConnectionString is the iothubowner service connection string. Its
// HostName carries the HTTPS port when that is not 443.
func (s *Server) ConnectionString() string {
	return s.PolicyConnectionString(hub.OwnerPolicy)
}

// PolicyConnectionString is the service connection string of a shared
// access policy ("" if there is no such policy).
func (s *Server) PolicyConnectionString(policy string) string {
	p, ok := s.hub.Policy(policy)
	if !ok {
		return ""
	}
	return sas.ConnectionString{HostName: s.hostWithPort(s.HTTPSAddr(), "443"),
		SharedAccessKeyName: p.Name, SharedAccessKey: p.PrimaryKey}.String()
}

// IDScope is the Device Provisioning Service's ID scope.
func (s *Server) IDScope() string { return s.dps.IDScope() }

// ProvisioningHost is the provisioning host devices register with: the
// hub's host name, with the HTTPS port when that is not 443. The official
// SDKs take it as their provisioning host in place of
// global.azure-devices-provisioning.net.
func (s *Server) ProvisioningHost() string { return s.hostWithPort(s.HTTPSAddr(), "443") }

// ProvisioningConnectionString is the provisioning service's connection
// string for its provisioningserviceowner policy, for service SDKs that
// manage enrollments.
func (s *Server) ProvisioningConnectionString() string {
	p, _ := s.dps.Policy(dps.OwnerPolicy)
	return sas.ConnectionString{HostName: s.hostWithPort(s.HTTPSAddr(), "443"),
		SharedAccessKeyName: p.Name, SharedAccessKey: p.PrimaryKey}.String()
}

// EventHubName is the name of the hub's Event Hub-compatible endpoint: the
// hub name, the first label of the host name.
func (s *Server) EventHubName() string { return amqpapi.HubName(s.opts.HostName) }

// EventHubConnectionString is the iothubowner connection string of the
// Event Hub-compatible endpoint, for the Event Hubs SDKs over AMQP with TLS
// (trusting CAFile). Its endpoint carries the AMQP port when that is not
// 5671. Empty when the TLS AMQP listener is off.
func (s *Server) EventHubConnectionString() string {
	if s.AMQPAddr() == "" {
		return ""
	}
	return s.eventHubConnectionString(s.hostWithPort(s.AMQPAddr(), "5671"), "")
}

// EventHubEmulatorConnectionString is EventHubConnectionString in the form
// the Event Hubs SDKs read as "the local emulator": plain AMQP on the
// --amqp-plain-addr port, UseDevelopmentEmulator=true. Empty when that
// listener is off.
func (s *Server) EventHubEmulatorConnectionString() string {
	a := s.AMQPPlainAddr()
	if a == "" {
		return ""
	}
	// Always with the port: some SDK versions require one in this form.
	return s.eventHubConnectionString(net.JoinHostPort(s.opts.HostName, portOf(a)), ";UseDevelopmentEmulator=true")
}

func (s *Server) eventHubConnectionString(endpoint, suffix string) string {
	p, ok := s.hub.Policy(hub.OwnerPolicy)
	if !ok {
		return ""
	}
	return "Endpoint=sb://" + endpoint + "/;SharedAccessKeyName=" + p.Name + ";SharedAccessKey=" + p.PrimaryKey +
		";EntityPath=" + s.EventHubName() + suffix
}

// DashboardURL is the address of the web dashboard (README: "Dashboard").
func (s *Server) DashboardURL() string {
	return "https://" + s.hostWithPort(s.HTTPSAddr(), "443") + ui.Prefix
}

// CAFile is the path of the CA certificate (PEM) that clients must trust;
// empty when a user-supplied certificate came without one.
func (s *Server) CAFile() string { return s.tls.CAFile }

// CAPEM is the CA certificate that clients must trust, PEM-encoded.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.tls.CAPEM...) }

// CAPool is a certificate pool that trusts the emulator.
func (s *Server) CAPool() *x509.CertPool { return s.tls.Pool }

// TLSConfig is a client TLS configuration that trusts the emulator.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.tls.Pool, ServerName: s.opts.HostName, MinVersion: tls.VersionTLS12}
}

// Ready reports whether both listeners are serving.
func (s *Server) Ready() bool { return s.ready.Load() }

// mqttPort is used in device connection strings.
func (s *Server) mqttHost() string { return s.hostWithPort(s.MQTTAddr(), "8883") }

// httpsPort returns the HTTPS port as a number (for WebSocket device clients).
func (s *Server) httpsPort() int {
	n, _ := strconv.Atoi(portOf(s.HTTPSAddr()))
	return n
}
