// SPDX-License-Identifier: MIT

// Package restapi serves IoT Hub's HTTPS surface: the service REST API, the
// emulator's health and test-control routes, and the mount point for MQTT
// over WebSockets. It only parses, authenticates and maps errors; the hub
// core holds the rules.
package restapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Options configure the handler.
type Options struct {
	Hub       *hub.Hub
	WebSocket http.Handler // MQTT over WebSockets, mounted at /$iothub/websocket; nil: not served
	Ready     func() bool  // /health answers 200 only when this says so; nil: always ready
	CAPEM     []byte       // served at /emulator/ca.pem for containers to trust
}

// route is one line of the route table: the whole API is declared in
// routes(), in one place, with the rights each route needs.
type route struct {
	method  string
	path    string
	rights  hub.Rights // any one of these satisfies the route; 0: no authentication
	handler func(*server, http.ResponseWriter, *http.Request) error
}

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
		{"GET", "/devices", rr, (*server).listDevices},
		{"POST", "/devices", rw, (*server).bulkDevices},
		{"POST", "/devices/query", rr | sc, (*server).query},
		{"PUT", "/devices/{id}", rw, (*server).putDevice},
		{"GET", "/devices/{id}", rr, (*server).getDevice},
		{"DELETE", "/devices/{id}", rw, (*server).deleteDevice},
		// Module identities (§6.3).
		{"GET", "/devices/{id}/modules", rr, (*server).listModules},
		{"PUT", "/devices/{id}/modules/{mid}", rw, (*server).putModule},
		{"GET", "/devices/{id}/modules/{mid}", rr, (*server).getModule},
		{"DELETE", "/devices/{id}/modules/{mid}", rw, (*server).deleteModule},
		// Twins (§6.4) and direct methods (§4).
		{"GET", "/twins/{id}", rr | sc, (*server).getTwin},
		{"PATCH", "/twins/{id}", sc, (*server).patchTwin},
		{"PUT", "/twins/{id}", sc, (*server).putTwin},
		{"GET", "/twins/{id}/modules/{mid}", rr | sc, (*server).getTwin},
		{"PATCH", "/twins/{id}/modules/{mid}", sc, (*server).patchTwin},
		{"PUT", "/twins/{id}/modules/{mid}", sc, (*server).putTwin},
		{"POST", "/twins/{id}/methods", sc, (*server).invokeMethod},
		{"POST", "/twins/{id}/modules/{mid}/methods", sc, (*server).invokeMethod},
		// Statistics (§6.7).
		{"GET", "/statistics/devices", rr, (*server).registryStats},
		{"GET", "/statistics/service", sc, (*server).serviceStats},
	}
}

// New returns the HTTPS handler.
func New(opts Options) http.Handler {
	s := &server{hub: opts.Hub, ready: opts.Ready, caPEM: opts.CAPEM}
	r := mux.NewRouter()
	// Ids may contain escaped characters ('/', '#', '?', '%'): match on the
	// encoded path and unescape the variables ourselves.
	r.UseEncodedPath()
	r.HandleFunc("/health", s.health).Methods("GET", "HEAD")
	if opts.WebSocket != nil {
		r.Handle("/$iothub/websocket", opts.WebSocket)
	}
	for _, rt := range routes() {
		r.Handle(rt.path, s.pipeline(rt)).Methods(rt.method)
	}
	r.NotFoundHandler = http.HandlerFunc(s.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(s.methodNotAllowed)
	return r
}
