// SPDX-License-Identifier: MIT

package mqttapi

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

func (e *env) wsURL() string {
	return "wss" + strings.TrimPrefix(e.ws.URL, "https") + "/$iothub/websocket"
}

func (e *env) wsDialer() *websocket.Dialer {
	return &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: e.roots, ServerName: hostName}, HandshakeTimeout: waitTime}
}

func TestWebSocketSubprotocol(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		offer  []string
		status int
		chosen string
	}{
		{"mqtt.js and paho", []string{"mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{"C SDK spelling", []string{"MQTT"}, http.StatusSwitchingProtocols, "MQTT"},
		{"among others", []string{"wamp", "mqtt"}, http.StatusSwitchingProtocols, "mqtt"},
		{"none", nil, http.StatusBadRequest, ""},
		{"only others", []string{"mqttv3.1"}, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := e.wsDialer()
			d.Subprotocols = tt.offer
			ws, resp, err := d.Dial(e.wsURL(), nil)
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tt.status)
			}
			if ws == nil {
				return
			}
			defer ws.Close()
			if got := ws.Subprotocol(); got != tt.chosen {
				t.Errorf("subprotocol: got %q, want %q", got, tt.chosen)
			}
		})
	}
}

func TestWebSocketTextMessageCloses(t *testing.T) {
	e := newEnv(t)
	d := e.wsDialer()
	d.Subprotocols = []string{"mqtt"}
	ws, _, err := d.Dial(e.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte("CONNECT")); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitTime))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Error("read after a text message: got a message, want the connection closed")
	}
}

func TestWebSocketHandlerBeforeStart(t *testing.T) {
	e := newEnv(t)
	s, err := New(Options{Hub: e.hub, TLSConfig: &tls.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/$iothub/websocket", nil)
	r.Header.Set("Sec-WebSocket-Protocol", "mqtt")
	s.WebSocketHandler().ServeHTTP(rec, r)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status before Start: got %d, want %d", rec.Code, http.StatusServiceUnavailable)
	}
}

func TestCloseDropsDevices(t *testing.T) {
	e := newEnv(t)
	a := e.connectDevice(t, "devA", false)
	b := e.connectDevice(t, "devB", true)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	a.waitLost(t)
	b.waitLost(t)
	for _, id := range []string{"devA", "devB"} {
		if e.hub.IsConnected(hub.Identity{DeviceID: id}) {
			t.Errorf("%s still connected in the hub after Close", id)
		}
	}
	if err := e.srv.Start(); err == nil {
		t.Error("Start after Close: got no error, want one")
	}
	d := e.wsDialer()
	d.Subprotocols = []string{"mqtt"}
	if _, resp, err := d.Dial(e.wsURL(), nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("WebSocket after Close: got %v, want 503", err)
	}
}
