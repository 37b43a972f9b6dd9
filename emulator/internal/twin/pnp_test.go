// SPDX-License-Identifier: MIT

package twin

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDigitalTwin renders the thermostat example of concepts-digital-twin:
// a root read-only property, a root writable property with its
// acknowledgement, and a component with both kinds.
func TestDigitalTwin(t *testing.T) {
	d := build(t,
		op{"desired", `{"fanSpeed":2.0,"thermostat1":{"__t":"c","targetTemperature":21.8}}`},
		op{"reported", `{"serialNumber":"alwinexlepaho8329","fanSpeed":{"value":3.0,"ac":200,"av":1,"ad":"done"}}`},
		op{"reported", `{"thermostat1":{"__t":"c","maxTempSinceLastReboot":25.3,"targetTemperature":{"value":21.8,"ac":200,"av":2,"ad":"Successfully executed patch"}}}`},
	)
	got := decodeAny(t, d.DigitalTwin("sample-device", "dtmi:com:example:TemperatureController;1"))
	want := decodeAny(t, []byte(`{
		"$dtId": "sample-device",
		"serialNumber": "alwinexlepaho8329",
		"fanSpeed": 3.0,
		"thermostat1": {
			"maxTempSinceLastReboot": 25.3,
			"targetTemperature": 21.8,
			"$metadata": {
				"targetTemperature": {"desiredValue": 21.8, "desiredVersion": 2, "ackVersion": 2, "ackCode": 200,
					"ackDescription": "Successfully executed patch", "lastUpdateTime": "`+ts(3)+`"},
				"maxTempSinceLastReboot": {"lastUpdateTime": "`+ts(3)+`"}
			}
		},
		"$metadata": {
			"$model": "dtmi:com:example:TemperatureController;1",
			"serialNumber": {"lastUpdateTime": "`+ts(2)+`"},
			"fanSpeed": {"desiredValue": 2.0, "desiredVersion": 2, "ackVersion": 1, "ackCode": 200, "ackDescription": "done", "lastUpdateTime": "`+ts(2)+`"}
		}
	}`))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("digital twin (-want +got):\n%s", diff)
	}
}

func TestDigitalTwinEmpty(t *testing.T) {
	if got, want := string(New(t0).DigitalTwin("d1", "")), `{"$dtId":"d1","$metadata":{}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// A component the service has set but the device has not reported
	// shows with its desired metadata only; its order is the key order.
	d := build(t, op{"desired", `{"c1":{"__t":"c","p":1}}`})
	got := string(d.DigitalTwin("d1", "dtmi:x;1"))
	want := `{"$dtId":"d1","c1":{"$metadata":{"p":{"desiredValue":1,"desiredVersion":2}}},"$metadata":{"$model":"dtmi:x;1"}}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

func TestDigitalTwinPatch(t *testing.T) {
	base := []op{
		{"desired", `{"fanSpeed":1,"thermostat1":{"__t":"c","targetTemperature":20,"mode":"eco"}}`},
		{"reported", `{"obj":{"a":1},"thermostat2":{"__t":"c","targetTemperature":{"value":1,"ac":200,"av":1}}}`},
	}
	tests := []struct {
		name, patch, want string
	}{
		{"root property", `[{"op":"add","path":"/fanSpeed","value":3}]`, `{"fanSpeed":3}`},
		{"replace and remove root", `[{"op":"replace","path":"/fanSpeed","value":4},{"op":"remove","path":"/other"}]`, `{"fanSpeed":4,"other":null}`},
		{"component property", `[{"op":"add","path":"/thermostat1/targetTemperature","value":21.4}]`,
			`{"thermostat1":{"__t":"c","targetTemperature":21.4}}`},
		{"reported-only component property", `[{"op":"replace","path":"/thermostat2/targetTemperature","value":5}]`,
			`{"thermostat2":{"__t":"c","targetTemperature":5}}`},
		{"new component by property", `[{"op":"add","path":"/thermostat3/targetTemperature","value":1}]`,
			`{"thermostat3":{"__t":"c","targetTemperature":1}}`},
		{"remove component property", `[{"op":"remove","path":"/thermostat1/mode"}]`, `{"thermostat1":{"mode":null}}`},
		{"field of a complex property", `[{"op":"replace","path":"/obj/a","value":2}]`, `{"obj":{"a":2}}`},
		{"add component clears the rest", `[{"op":"add","path":"/thermostat1","value":{"targetTemperature":22,"$metadata":{}}}]`,
			`{"thermostat1":{"__t":"c","targetTemperature":22,"mode":null}}`},
		{"new component", `[{"op":"add","path":"/thermostat9","value":{"p":1,"$metadata":{}}}]`,
			`{"thermostat9":{"__t":"c","p":1}}`},
		{"remove component", `[{"op":"remove","path":"/thermostat1"}]`, `{"thermostat1":null}`},
		{"later op wins", `[{"op":"add","path":"/fanSpeed","value":3},{"op":"add","path":"/fanSpeed","value":5}]`, `{"fanSpeed":5}`},
		{"escaped pointer", `[{"op":"add","path":"/x~0y","value":1}]`, ``},
		{"empty patch", `[]`, `{}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := build(t, base...)
			got, err := d.DigitalTwinPatch([]byte(tc.patch))
			if tc.want == "" {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %s, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDigitalTwinPatchInvalid(t *testing.T) {
	for _, patch := range []string{
		`{"op":"add","path":"/a","value":1}`,
		`[{"op":"move","from":"/a","path":"/b"}]`,
		`[{"op":"test","path":"/a","value":1}]`,
		`[{"path":"/a","value":1}]`,
		`[{"op":"add","value":1}]`,
		`[{"op":"add","path":"a","value":1}]`,
		`[{"op":"add","path":"/","value":1}]`,
		`[{"op":"add","path":"/a//b","value":1}]`,
		`[{"op":"add","path":"/a"}]`,
		`[{"op":"add","path":"/1a","value":1}]`,
		`[{"op":"add","path":"/a_","value":1}]`,
		`[{"op":"add","path":"/a-b","value":1}]`,
		`[{"op":"add","path":"/a","value":[1,2]}]`,
		`[{"op":"add","path":"/a","value":{"b-c":1}}]`,
		`[{"op":"add","path":"/a","value":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}]`,
		`[{"op":"add","path":"/c","value":{"p":1,"$metadata":{"x":1}}}]`,
		`[{"op":"add","path":"/c","value":{"p":[1],"$metadata":{}}}]`,
		`[{"op":"add","path":"/a","value":{]}]`,
	} {
		if got, err := New(t0).DigitalTwinPatch([]byte(patch)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %s, %v; want ErrInvalid", patch, got, err)
		}
	}
}
