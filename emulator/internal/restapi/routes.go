// SPDX-License-Identifier: MIT

// Package restapi serves IoT Hub's HTTPS surface: the service REST API, the
// emulator's health and test-control routes, and the mount point for MQTT
// over WebSockets. It only parses, authenticates and maps errors; the hub
// core holds the rules.
package restapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/iothubemulator/iothub/emulator/internal/dps"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Options configure the handler.
type Options struct {
	Hub       *hub.Hub
	WebSocket http.Handler // MQTT and AMQP over WebSockets, mounted at /$iothub/websocket; nil: not served
	Ready     func() bool  // /health answers 200 only when this says so; nil: always ready
	CAPEM     []byte       // served at /emulator/ca.pem for containers to trust
	UI        http.Handler // the dashboard (package ui), mounted at /ui/; nil: not served
	// WriteTimeout and BodyTimeout bound each request (see deadlines.go);
	// zero: DefaultWriteTimeout, DefaultBodyTimeout.
	WriteTimeout, BodyTimeout time.Duration
	DPS                       *dps.Service // the Device Provisioning Service's device and service APIs; nil: not served
	// ServiceBusWebSocket is AMQP over WebSockets for the Event Hubs SDKs,
	// mounted at /$servicebus/websocket; nil: not served.
	ServiceBusWebSocket http.Handler
	// EventHub describes the Event Hub-compatible endpoint for
	// GET /emulator/eventhub; nil: the route answers that there is none.
	EventHub func() EventHubEndpoint
	// Throttler is the throttling switch of /emulator/throttle; nil: not served.
	Throttler Throttler
	// Metrics serves the Prometheus metrics at GET /metrics, with the
	// control routes' authorization; nil: not served.
	Metrics http.Handler
}

// EventHubEndpoint is the Event Hub-compatible endpoint as GET
// /emulator/eventhub describes it: its name and the iothubowner connection
// strings for the Event Hubs SDKs, over TLS and in their
// UseDevelopmentEmulator form (plain AMQP; empty when that listener is off).
type EventHubEndpoint struct {
	Name                                string `json:"name"`
	ConnectionString                    string `json:"connectionString"`
	DevelopmentEmulatorConnectionString string `json:"developmentEmulatorConnectionString,omitempty"`
}

// Throttler is the throttling switch, which lives above the hub (package
// emulator keeps it among its reactors).
type Throttler interface {
	SetThrottle(ThrottleSettings) error
	Throttle() ThrottleSettings
}

// ThrottleSettings is the body of /emulator/throttle.
type ThrottleSettings struct {
	Rate       float64  `json:"rate"`                // share of operations refused, 0 (off) to 1
	ErrorCode  string   `json:"errorCode,omitempty"` // ThrottlingException (the default) or IotHubQuotaExceeded
	Operations []string `json:"operations"`          // fault-injection operation names; none: all
}

// route is one line of the route table: the whole API is declared in
// routes(), in one place, with the rights each route needs.
type route struct {
	method  string
	path    string
	rights  hub.Rights // any one of these satisfies the route; 0: no service authentication
	handler func(*server, http.ResponseWriter, *http.Request) error
	kind    routeKind
}

// dpsRoute is a line of the provisioning route table; the service's
// rights are its own.
type dpsRoute struct {
	method  string
	path    string
	rights  dps.Rights // dpsServiceRoute: any one of these satisfies the route
	handler func(*server, http.ResponseWriter, *http.Request) error
	kind    routeKind
}

type routeKind int

const (
	serviceRoute routeKind = iota // hub policy SAS, api-version required
	deviceRoute                   // device SAS for the identity in the path, api-version required
	controlRoute                  // emulator-only: iothubowner-equivalent policy, no api-version
	publicRoute                   // emulator-only, unauthenticated

	// The Device Provisioning Service shares the host and the listener with
	// the hub, as one process plays both (README: "Device Provisioning
	// Service"); its routes render DPS errors (dps.Error), not the hub's.
	dpsDeviceRoute  // device API: the device's SAS token or TLS client certificate, checked by package dps
	dpsServiceRoute // service API: a provisioning-service policy SAS
)

// The rights mapping follows iothub-protocol.md §2.4. Reads of twins and
// queries accept RegistryRead or ServiceConnect, because both policies are
// documented as able to read device state; writes need ServiceConnect.
func routes() []route {
	const (
		rr = hub.RegistryRead
		rw = hub.RegistryWrite
		sc = hub.ServiceConnect
	)
	return []route{
		// Device identities (§6.2).
		{"GET", "/devices", rr, (*server).listDevices, serviceRoute},
		// Node's Registry.list builds its path from an empty id: /devices/.
		{"GET", "/devices/", rr, (*server).listDevices, serviceRoute},
		{"POST", "/devices", rw, (*server).bulkDevices, serviceRoute},
		{"POST", "/devices/query", rr | sc, (*server).query, serviceRoute},
		{"PUT", "/devices/{id}", rw, (*server).putDevice, serviceRoute},
		{"GET", "/devices/{id}", rr, (*server).getDevice, serviceRoute},
		{"DELETE", "/devices/{id}", rw, (*server).deleteDevice, serviceRoute},
		// Module identities (§6.3).
		{"GET", "/devices/{id}/modules", rr, (*server).listModules, serviceRoute},
		{"PUT", "/devices/{id}/modules/{mid}", rw, (*server).putModule, serviceRoute},
		{"GET", "/devices/{id}/modules/{mid}", rr, (*server).getModule, serviceRoute},
		{"DELETE", "/devices/{id}/modules/{mid}", rw, (*server).deleteModule, serviceRoute},
		// Twins (§6.4) and direct methods (§4).
		{"GET", "/twins/{id}", rr | sc, (*server).getTwin, serviceRoute},
		{"PATCH", "/twins/{id}", sc, (*server).patchTwin, serviceRoute},
		{"PUT", "/twins/{id}", sc, (*server).putTwin, serviceRoute},
		{"GET", "/twins/{id}/modules/{mid}", rr | sc, (*server).getTwin, serviceRoute},
		{"PATCH", "/twins/{id}/modules/{mid}", sc, (*server).patchTwin, serviceRoute},
		{"PUT", "/twins/{id}/modules/{mid}", sc, (*server).putTwin, serviceRoute},
		{"POST", "/twins/{id}/methods", sc, (*server).invokeMethod, serviceRoute},
		{"POST", "/twins/{id}/modules/{mid}/methods", sc, (*server).invokeMethod, serviceRoute},
		// Cloud-to-device for the back end (§7): the feedback queue and the
		// purge of a device's queue.
		{"GET", "/messages/serviceBound/feedback", sc, (*server).receiveFeedback, serviceRoute},
		{"DELETE", "/messages/serviceBound/feedback/{lock}", sc, (*server).completeFeedback, serviceRoute},
		{"POST", "/messages/serviceBound/feedback/{lock}/abandon", sc, (*server).abandonFeedback, serviceRoute},
		{"DELETE", "/devices/{id}/commands", sc, (*server).purgeC2D, serviceRoute},
		// Registry import/export jobs (iot-hub-bulk-identity-mgmt), not
		// /jobs/v2.
		{"POST", "/jobs/create", rw, (*server).createIEJob, serviceRoute},
		{"GET", "/jobs", rr, (*server).listIEJobs, serviceRoute},
		{"GET", "/jobs/{job}", rr, (*server).getIEJob, serviceRoute},
		{"DELETE", "/jobs/{job}", rw, (*server).cancelIEJob, serviceRoute},
		// Statistics (§6.7).
		{"GET", "/statistics/devices", rr, (*server).registryStats, serviceRoute},
		{"GET", "/statistics/service", sc, (*server).serviceStats, serviceRoute},
		// Automatic device management (configurations.go). The C# SDK lists
		// with a trailing slash: /configurations/?top=N.
		{"GET", "/configurations", rr, (*server).listConfigurations, serviceRoute},
		{"GET", "/configurations/", rr, (*server).listConfigurations, serviceRoute},
		{"POST", "/configurations/testQueries", rr, (*server).testConfigurationQueries, serviceRoute},
		{"PUT", "/configurations/{id}", rw, (*server).putConfiguration, serviceRoute},
		{"GET", "/configurations/{id}", rr, (*server).getConfiguration, serviceRoute},
		{"DELETE", "/configurations/{id}", rw, (*server).deleteConfiguration, serviceRoute},
		{"POST", "/devices/{id}/applyConfigurationContent", rw, (*server).applyConfigurationContent, serviceRoute},
		// IoT Plug and Play digital twins (digitaltwins.go): views of device
		// twins, read like twins, written and commanded like them.
		{"GET", "/digitaltwins/{id}", rr | sc, (*server).getDigitalTwin, serviceRoute},
		{"PATCH", "/digitaltwins/{id}", sc, (*server).updateDigitalTwin, serviceRoute},
		{"POST", "/digitaltwins/{id}/commands/{command}", sc, (*server).invokeCommand, serviceRoute},
		{"POST", "/digitaltwins/{id}/components/{component}/commands/{command}", sc, (*server).invokeCommand, serviceRoute},
		// Device-facing HTTPS API (§7): authenticated with the device's own SAS.
		{"POST", "/devices/{id}/messages/events", 0, (*server).deviceSend, deviceRoute},
		{"POST", "/devices/{id}/modules/{mid}/messages/events", 0, (*server).deviceSend, deviceRoute},
		{"GET", "/devices/{id}/messages/deviceBound", 0, (*server).deviceReceive, deviceRoute},
		{"DELETE", "/devices/{id}/messages/deviceBound/{lock}", 0, (*server).deviceComplete, deviceRoute},
		{"POST", "/devices/{id}/messages/deviceBound/{lock}/abandon", 0, (*server).deviceAbandon, deviceRoute},
		// The hub matches these paths case-insensitively: the Node SDK
		// (azure-iot-device-http) spells them devicebound.
		{"GET", "/devices/{id}/messages/devicebound", 0, (*server).deviceReceive, deviceRoute},
		{"DELETE", "/devices/{id}/messages/devicebound/{lock}", 0, (*server).deviceComplete, deviceRoute},
		{"POST", "/devices/{id}/messages/devicebound/{lock}/abandon", 0, (*server).deviceAbandon, deviceRoute},
		// File upload (iot-hub-devguide-file-upload); modules have none.
		{"POST", "/devices/{id}/files", 0, (*server).createFileUpload, deviceRoute},
		{"POST", "/devices/{id}/files/notifications", 0, (*server).completeFileUpload, deviceRoute},
		{"POST", "/devices/{id}/files/notifications/{cid}", 0, (*server).completeFileUpload, deviceRoute},
		// Emulator-only test control (README: "Test-control API").
		{"GET", "/emulator/ca.pem", 0, (*server).caPEMRoute, publicRoute},
		{"POST", "/emulator/reset", hub.AllRights, (*server).reset, controlRoute},
		{"GET", "/emulator/messages", hub.AllRights, (*server).messages, controlRoute},
		{"GET", "/emulator/messages/head", hub.AllRights, (*server).messagesHead, controlRoute},
		{"POST", "/emulator/devices/{id}/messages/devicebound", hub.AllRights, (*server).sendC2D, controlRoute},
		{"GET", "/emulator/devices/{id}/messages/devicebound", hub.AllRights, (*server).pendingC2D, controlRoute},
		{"GET", "/emulator/feedback", hub.AllRights, (*server).feedback, controlRoute},
		{"GET", "/emulator/methods", hub.AllRights, (*server).methodCalls, controlRoute},
		{"POST", "/emulator/faults", hub.AllRights, (*server).injectFault, controlRoute},
		{"GET", "/emulator/faults", hub.AllRights, (*server).faults, controlRoute},
		{"GET", "/emulator/throttle", hub.AllRights, (*server).getThrottle, controlRoute},
		{"POST", "/emulator/throttle", hub.AllRights, (*server).setThrottle, controlRoute},
		{"DELETE", "/emulator/throttle", hub.AllRights, (*server).deleteThrottle, controlRoute},
		// File-upload notifications (the AMQP node's queue, over HTTPS).
		{"GET", "/emulator/filenotifications", hub.AllRights, (*server).fileNotification, controlRoute},
		{"DELETE", "/emulator/filenotifications/{lock}", hub.AllRights, (*server).completeFileNotification, controlRoute},
		{"POST", "/emulator/filenotifications/{lock}/abandon", hub.AllRights, (*server).abandonFileNotification, controlRoute},
		{"GET", "/emulator/eventhub", hub.AllRights, (*server).eventHub, controlRoute},
		{"GET", "/metrics", hub.AllRights, (*server).metricsRoute, controlRoute},
		{"GET", "/emulator/twins/{id}/history", hub.AllRights, (*server).twinHistory, controlRoute},
		{"GET", "/emulator/twins/{id}/modules/{mid}/history", hub.AllRights, (*server).twinHistory, controlRoute},
	}
}

// dpsRoutes is the Device Provisioning Service's route table: the service
// API (api-version 2021-10-01) and the device API (2019-03-31). Service
// routes come first: "/registrations/{id}/query" would otherwise also read
// as a device status lookup of ID scope "registrations". The Node service
// SDK spells the group prefix "enrollmentgroups" on its attestation
// mechanism route, so both spellings are served.
func dpsRoutes() []dpsRoute {
	const (
		er = dps.EnrollmentRead | dps.EnrollmentWrite
		ew = dps.EnrollmentWrite
		rr = dps.RegistrationStatusRead | dps.RegistrationStatusWrite
		rw = dps.RegistrationStatusWrite
	)
	svc := func(method, path string, rights dps.Rights, h func(*server, http.ResponseWriter, *http.Request) error) dpsRoute {
		return dpsRoute{method, path, rights, h, dpsServiceRoute}
	}
	dev := func(method, path string, h func(*server, http.ResponseWriter, *http.Request) error) dpsRoute {
		return dpsRoute{method, path, 0, h, dpsDeviceRoute}
	}
	rs := []dpsRoute{
		svc("POST", "/enrollments/query", er, (*server).dpsQueryEnrollments),
		svc("POST", "/enrollments", ew, (*server).dpsBulk),
		svc("PUT", "/enrollments/{id}", ew, (*server).dpsPutEnrollment),
		svc("GET", "/enrollments/{id}", er, (*server).dpsGetEnrollment),
		svc("DELETE", "/enrollments/{id}", ew, (*server).dpsDeleteEnrollment),
		svc("POST", "/enrollments/{id}/attestationmechanism", er, (*server).dpsEnrollmentAttestation),
		svc("POST", "/registrations/{id}/query", rr, (*server).dpsQueryRegistrations),
		svc("GET", "/registrations/{id}", rr, (*server).dpsGetRegistration),
		svc("DELETE", "/registrations/{id}", rw, (*server).dpsDeleteRegistration),
	}
	for _, prefix := range []string{"/enrollmentGroups", "/enrollmentgroups"} {
		rs = append(rs,
			svc("POST", prefix+"/query", er, (*server).dpsQueryGroups),
			svc("PUT", prefix+"/{id}", ew, (*server).dpsPutGroup),
			svc("GET", prefix+"/{id}", er, (*server).dpsGetGroup),
			svc("DELETE", prefix+"/{id}", ew, (*server).dpsDeleteGroup),
			svc("POST", prefix+"/{id}/attestationmechanism", er, (*server).dpsGroupAttestation),
		)
	}
	return append(rs,
		dev("PUT", "/{scope}/registrations/{rid}/register", (*server).dpsRegister),
		dev("GET", "/{scope}/registrations/{rid}/operations/{op}", (*server).dpsOperation),
		dev("POST", "/{scope}/registrations/{rid}", (*server).dpsRegistrationStatus),
	)
}

// New returns the HTTPS handler.
func New(opts Options) http.Handler {
	s := &server{hub: opts.Hub, ready: opts.Ready, caPEM: opts.CAPEM, dps: opts.DPS, writeTimeout: opts.WriteTimeout, bodyTimeout: opts.BodyTimeout,
		eventHubInfo: opts.EventHub, throttler: opts.Throttler, metrics: opts.Metrics}
	if s.writeTimeout <= 0 {
		s.writeTimeout = DefaultWriteTimeout
	}
	if s.bodyTimeout <= 0 {
		s.bodyTimeout = DefaultBodyTimeout
	}
	r := mux.NewRouter()
	// Ids may contain escaped characters ('/', '#', '?', '%'): match on the
	// encoded path and unescape the variables ourselves.
	r.UseEncodedPath()
	// "." and ".." are valid device ids; cleaning the path would answer
	// /devices/. with a redirect instead of the device.
	r.SkipClean(true)
	r.HandleFunc("/health", s.health).Methods("GET", "HEAD")
	if opts.WebSocket != nil {
		r.Handle("/$iothub/websocket", opts.WebSocket)
	}
	if opts.ServiceBusWebSocket != nil {
		r.Handle("/$servicebus/websocket", opts.ServiceBusWebSocket)
	}
	if opts.UI != nil {
		// Static pages that call the routes below like any other client.
		r.Handle("/ui", opts.UI)
		r.PathPrefix("/ui/").Handler(opts.UI)
	}
	for _, rt := range append(routes(), jobRoutes()...) {
		r.Handle(rt.path, s.pipeline(rt)).Methods(rt.method)
	}
	if s.dps != nil {
		for _, rt := range dpsRoutes() {
			r.Handle(rt.path, s.dpsPipeline(rt)).Methods(rt.method)
		}
	}
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)
	return r
}
