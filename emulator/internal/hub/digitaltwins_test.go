// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDigitalTwinGetAndUpdate(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	id := Identity{DeviceID: "thermo"}
	regDevice(t, h, Device{DeviceID: "thermo"})
	h.setModelID(id, "dtmi:com:example:Thermostat;1")

	dt, err := h.GetDigitalTwin(ctx, "thermo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(dt.Body), `{"$dtId":"thermo","$metadata":{"$model":"dtmi:com:example:Thermostat;1"}}`; got != want {
		t.Fatalf("new digital twin: got %s, want %s", got, want)
	}
	if dt.ETag != "AAAAAAAAAAE=" {
		t.Fatalf("etag %s", dt.ETag)
	}

	s := newDesiredSession()
	c := h.Connect(id, s, ConnectInfo{AuthMethod: "sas"})
	c.SubscribeDesired()
	t.Cleanup(c.Disconnect)

	patch := `[{"op":"add","path":"/targetTemperature","value":21.5},
		{"op":"add","path":"/thermostat1","value":{"targetTemperature":20,"$metadata":{}}}]`
	etag, err := h.UpdateDigitalTwin(ctx, "thermo", []byte(patch), `"AAAAAAAAAAE="`)
	if err != nil {
		t.Fatalf("UpdateDigitalTwin: %v", err)
	}
	if etag != "AAAAAAAAAAI=" {
		t.Errorf("new etag %s, want AAAAAAAAAAI=", etag)
	}
	if got, want := s.next(t), `2 {"targetTemperature":21.5,"thermostat1":{"__t":"c","targetTemperature":20},"$version":2}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
	if _, err := h.PatchReported(id, []byte(`{"targetTemperature":{"value":21.5,"ac":200,"av":2,"ad":"ok"},"serial":"s1"}`), 0); err != nil {
		t.Fatal(err)
	}
	dt, _ = h.GetDigitalTwin(ctx, "thermo")
	var got map[string]any
	if err := json.Unmarshal(dt.Body, &got); err != nil {
		t.Fatal(err)
	}
	ts := regNow.Format(TimeLayout)
	want := map[string]any{
		"$dtId": "thermo", "targetTemperature": 21.5, "serial": "s1",
		"thermostat1": map[string]any{"$metadata": map[string]any{"targetTemperature": map[string]any{"desiredValue": 20.0, "desiredVersion": 2.0}}},
		"$metadata": map[string]any{
			"$model":            "dtmi:com:example:Thermostat;1",
			"targetTemperature": map[string]any{"desiredValue": 21.5, "desiredVersion": 2.0, "ackVersion": 2.0, "ackCode": 200.0, "ackDescription": "ok", "lastUpdateTime": ts},
			"serial":            map[string]any{"lastUpdateTime": ts},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("digital twin (-want +got):\n%s", diff)
	}

	// Refused updates change nothing.
	before, _ := h.GetTwin(ctx, id)
	_, err = h.UpdateDigitalTwin(ctx, "thermo", []byte(`[{"op":"add","path":"/x","value":1}]`), `"AAAAAAAAAAE="`)
	wantCode(t, "stale etag", err, 412001)
	_, err = h.UpdateDigitalTwin(ctx, "thermo", []byte(`[{"op":"add","path":"/x","value":1},{"op":"move","from":"/x","path":"/y"}]`), "")
	wantCode(t, "move", err, 400004)
	_, err = h.UpdateDigitalTwin(ctx, "thermo", []byte(`[{"op":"add","path":"/bad-name","value":1}]`), "*")
	wantCode(t, "bad name", err, 400004)
	_, err = h.UpdateDigitalTwin(ctx, "ghost", []byte(`[]`), "")
	wantCode(t, "unknown device", err, 404001)
	_, err = h.GetDigitalTwin(ctx, "ghost")
	wantCode(t, "get unknown device", err, 404001)
	after, _ := h.GetTwin(ctx, id)
	if before.ETag != after.ETag || string(before.Properties.Desired) != string(after.Properties.Desired) {
		t.Errorf("a refused update changed the twin")
	}

	// Removing the component clears its desired properties.
	if _, err := h.UpdateDigitalTwin(ctx, "thermo", []byte(`[{"op":"remove","path":"/thermostat1"}]`), ""); err != nil {
		t.Fatal(err)
	}
	if got, want := s.next(t), `3 {"thermostat1":null,"$version":3}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
}

// commandSession records the methods a device receives and answers each.
type commandSession struct {
	mu   sync.Mutex
	conn *Conn
	seen []string
}

func (s *commandSession) SendMethod(rid, name string, payload []byte) error {
	s.mu.Lock()
	s.seen = append(s.seen, name+" "+string(payload))
	c := s.conn
	s.mu.Unlock()
	go c.ResolveMethod(rid, 201, []byte(`{"ok":true}`))
	return nil
}
func (s *commandSession) SendDesired(int64, []byte) error { return nil }
func (s *commandSession) Close()                          {}

func TestInvokeCommand(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	id := Identity{DeviceID: "d"}
	regDevice(t, h, Device{DeviceID: "d"})
	s := &commandSession{}
	c := h.Connect(id, s, ConnectInfo{AuthMethod: "sas"})
	s.mu.Lock()
	s.conn = c
	s.mu.Unlock()
	c.SubscribeMethods()
	t.Cleanup(c.Disconnect)

	res, err := h.InvokeCommand(ctx, "d", CommandRequest{Component: "thermostat1", Command: "getMaxMinReport",
		Payload: []byte(`"2024-05-02T00:00:00Z"`), ResponseTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 201 || string(res.Payload) != `{"ok":true}` || res.RequestID == "" {
		t.Fatalf("got %+v", res)
	}
	if _, err := h.InvokeCommand(ctx, "d", CommandRequest{Command: "reboot", ResponseTimeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	want := []string{`thermostat1*getMaxMinReport "2024-05-02T00:00:00Z"`, "reboot "}
	s.mu.Lock()
	defer s.mu.Unlock()
	if diff := cmp.Diff(want, s.seen); diff != "" {
		t.Errorf("methods the device saw (-want +got):\n%s", diff)
	}

	_, err = h.InvokeCommand(ctx, "d", CommandRequest{Command: " ", ResponseTimeout: 5 * time.Second})
	wantCode(t, "empty command", err, 400004)
	_, err = h.InvokeCommand(ctx, "d", CommandRequest{Component: "a*b", Command: "c", ResponseTimeout: 5 * time.Second})
	wantCode(t, "star in component", err, 400004)
	_, err = h.InvokeCommand(ctx, "d", CommandRequest{Command: "c", ResponseTimeout: time.Second})
	wantCode(t, "timeout out of range", err, 400004)
	_, err = h.InvokeCommand(ctx, "ghost", CommandRequest{Command: "c", ResponseTimeout: 5 * time.Second})
	wantCode(t, "unknown device", err, 404001)
}
