// SPDX-License-Identifier: MIT

package service

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Hub-shaped documents (field sets from the Node SDK mappers, values in the
// hub's formats: 7 fractional digits, zero times for never-set fields,
// statusReason null, thumbprints null).
const (
	deviceJSON = `{"deviceId":"dev1","generationId":"638501234567890123","etag":"MQ==","connectionState":"Disconnected",
 "status":"enabled","statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00Z",
 "statusUpdatedTime":"0001-01-01T00:00:00Z","lastActivityTime":"2024-05-02T09:14:03.1234567Z",
 "cloudToDeviceMessageCount":0,
 "authentication":{"type":"sas","symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"},
                   "x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},
 "capabilities":{"iotEdge":false}}`

	twinJSON = `{"deviceId":"dev1","etag":"AAAAAAAAAAM=","deviceEtag":"NjQ1MzIxMDg5","status":"enabled",
 "statusUpdateTime":"0001-01-01T00:00:00Z","connectionState":"Connected",
 "lastActivityTime":"2024-05-02T09:14:03.1234567Z","cloudToDeviceMessageCount":0,"authenticationType":"sas",
 "x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"modelId":"","version":6,
 "tags":{"site":{"building":"B7"}},
 "properties":{
  "desired":{"fanSpeed":3,"$metadata":{"$lastUpdated":"2024-05-02T09:10:00.0000000Z","$lastUpdatedVersion":2,
     "fanSpeed":{"$lastUpdated":"2024-05-02T09:10:00.0000000Z","$lastUpdatedVersion":2}},"$version":2},
  "reported":{"fanSpeed":3,"$metadata":{"$lastUpdated":"2024-05-02T09:11:30.5000000Z",
     "fanSpeed":{"$lastUpdated":"2024-05-02T09:11:30.5000000Z"}},"$version":3}},
 "capabilities":{"iotEdge":false}}`
)

func TestGetDeviceParsesHubShape(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, deviceJSON) })
	c, _ := hub.client(t)
	got, err := c.GetDevice(testContext(t), "dev1")
	if err != nil {
		t.Fatal(err)
	}
	want := &Device{
		DeviceID: "dev1", GenerationID: "638501234567890123", ETag: "MQ==",
		ConnectionState: Disconnected, Status: StatusEnabled,
		LastActivityTime: time.Date(2024, 5, 2, 9, 14, 3, 123456700, time.UTC),
		Authentication: &AuthenticationMechanism{
			Type:           AuthSAS,
			SymmetricKey:   &SymmetricKey{PrimaryKey: "cHJpbWFyeQ==", SecondaryKey: "c2Vjb25kYXJ5"},
			X509Thumbprint: &X509Thumbprint{},
		},
		Capabilities: &DeviceCapabilities{},
	}
	// The zero-valued 0001-01-01T00:00:00Z times decode with a UTC
	// location; compare instants.
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("device mismatch (-want +got):\n%s", diff)
	}
	if !got.StatusUpdatedTime.IsZero() {
		t.Errorf("StatusUpdatedTime = %v, want zero", got.StatusUpdatedTime)
	}
}

func TestGetTwinParsesHubShape(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, twinJSON) })
	c, _ := hub.client(t)
	twin, err := c.GetTwin(testContext(t), "dev1")
	if err != nil {
		t.Fatal(err)
	}
	if twin.ETag != "AAAAAAAAAAM=" || twin.Version != 6 || twin.ConnectionState != Connected || twin.AuthenticationType != AuthSAS {
		t.Errorf("got etag %q version %d state %q auth %q, want AAAAAAAAAAM= 6 Connected sas",
			twin.ETag, twin.Version, twin.ConnectionState, twin.AuthenticationType)
	}
	if got := twin.Properties.Desired.Version(); got != 2 {
		t.Errorf("desired $version = %d, want 2", got)
	}
	if got := twin.Properties.Reported.Version(); got != 3 {
		t.Errorf("reported $version = %d, want 3", got)
	}
	tags, err := twin.Tags.Map()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"site": map[string]any{"building": "B7"}}, tags); diff != "" {
		t.Errorf("tags mismatch (-want +got):\n%s", diff)
	}
	var desired struct {
		FanSpeed int `json:"fanSpeed"`
	}
	if err := twin.Properties.Desired.Decode(&desired); err != nil || desired.FanSpeed != 3 {
		t.Errorf("Decode desired: got %+v, %v; want fanSpeed 3", desired, err)
	}
	if _, ok := twin.Properties.Reported.Get("$metadata"); !ok {
		t.Errorf("reported $metadata missing, want the raw document kept")
	}
}

func TestStatisticsAndListsParse(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/statistics/devices":
			reply(w, 200, `{"totalDeviceCount":3,"enabledDeviceCount":2,"disabledDeviceCount":1}`)
		case "/statistics/service":
			reply(w, 200, `{"connectedDeviceCount":1}`)
		case "/devices":
			reply(w, 200, "["+deviceJSON+","+deviceJSON+"]")
		case "/devices/dev1/modules":
			reply(w, 200, `[{"moduleId":"m1","deviceId":"dev1","managedBy":"IotEdge","etag":"Mg==","authentication":{"type":"none"}}]`)
		}
	})
	c, _ := hub.client(t)
	ctx := testContext(t)
	rs, err := c.GetRegistryStatistics(ctx)
	if err != nil || *rs != (RegistryStatistics{3, 2, 1}) {
		t.Errorf("GetRegistryStatistics = %+v, %v; want {3 2 1}", rs, err)
	}
	ss, err := c.GetServiceStatistics(ctx)
	if err != nil || ss.ConnectedDeviceCount != 1 {
		t.Errorf("GetServiceStatistics = %+v, %v; want 1 connected", ss, err)
	}
	ds, err := c.ListDevices(ctx, 0)
	if err != nil || len(ds) != 2 || ds[1].DeviceID != "dev1" {
		t.Errorf("ListDevices = %d devices, %v; want 2", len(ds), err)
	}
	ms, err := c.ListModules(ctx, "dev1")
	want := []*Module{{ModuleID: "m1", DeviceID: "dev1", ManagedBy: "IotEdge", ETag: "Mg==", Authentication: &AuthenticationMechanism{Type: AuthNone}}}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, ms); diff != "" {
		t.Errorf("ListModules mismatch (-want +got):\n%s", diff)
	}
}

func TestInvokeMethodResult(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantStatus  int
		wantPayload string
	}{
		{"object payload", `{"status":200,"payload":{"speed":3,"applied":true}}`, 200, `{"speed":3,"applied":true}`},
		{"device error status", `{"status":501,"payload":"unknown method"}`, 501, `"unknown method"`},
		{"empty device body", `{"status":200,"payload":null}`, 200, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, tt.body) })
			c, _ := hub.client(t)
			res, err := c.InvokeMethod(testContext(t), "dev1", MethodCall{Name: "m"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.wantStatus || string(res.Payload) != tt.wantPayload {
				t.Errorf("got status %d payload %s, want %d %s", res.Status, res.Payload, tt.wantStatus, tt.wantPayload)
			}
		})
	}
}

func TestMethodResultDecodePayload(t *testing.T) {
	r := &MethodResult{Status: 200, Payload: json.RawMessage(`{"speed":3}`)}
	var v struct{ Speed int }
	if err := r.DecodePayload(&v); err != nil || v.Speed != 3 {
		t.Errorf("DecodePayload = %+v, %v; want speed 3", v, err)
	}
}

// TestBulkPartialFailure checks the 400 answer with per-device errors: the
// result and an *Error both come back.
func TestBulkPartialFailure(t *testing.T) {
	const body = `{"isSuccessful":false,"errors":[
	  {"deviceId":"a","errorCode":"DeviceAlreadyExists","errorStatus":"A device with ID 'a' is already registered."},
	  {"deviceId":"b","errorCode":404001,"errorStatus":"Device not found","moduleId":"","operation":"delete"}],"warnings":[]}`
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 400, body) })
	c, _ := hub.client(t)
	res, err := c.BulkRegistryOperation(testContext(t), []ExportImportDevice{
		{ID: "a", ImportMode: ImportCreate}, {ID: "b", ImportMode: ImportDelete},
	})
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("got error %v, want a 400 *Error", err)
	}
	want := &BulkRegistryOperationResult{
		Errors: []DeviceRegistryOperationError{
			{DeviceID: "a", ErrorCode: "DeviceAlreadyExists", ErrorStatus: "A device with ID 'a' is already registered."},
			{DeviceID: "b", ErrorCode: "404001", ErrorStatus: "Device not found", Operation: "delete"},
		},
		Warnings: []DeviceRegistryOperationWarning{},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeBulkRegistryOperationFailed {
		t.Errorf("got %#v, want code %d", e, CodeBulkRegistryOperationFailed)
	}
}

func TestBulkSuccessAndImportDevices(t *testing.T) {
	hub := newFakeHub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"isSuccessful":true,"errors":[],"warnings":[]}`)
	})
	c, _ := hub.client(t)
	res, err := c.ImportDevices(testContext(t), ImportDelete, []ExportImportDevice{{ID: "a"}, {ID: "b"}})
	if err != nil || !res.IsSuccessful {
		t.Fatalf("ImportDevices = %+v, %v; want success", res, err)
	}
	checkJSON(t, "bulk body", hub.requests()[0].Body, `[{"id":"a","importMode":"delete"},{"id":"b","importMode":"delete"}]`)
}
