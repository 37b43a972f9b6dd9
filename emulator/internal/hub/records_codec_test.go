// SPDX-License-Identifier: MIT

package hub

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// sampleRecords are records as the hub stores them: a device with its
// twin written, an edge device with configurations, a module, and records
// without a twin or with an empty rest.
func sampleRecords(t testing.TB) []*record {
	reason := `on "hold" \ </script>`
	d := twin.New(regNow)
	if _, err := d.PatchReported([]byte(`{"fw":"1.2","s":"é\u2028<>&","n":[1,{"x":"y"}]}`), regNow); err != nil {
		t.Fatal(err)
	}
	return []*record{
		{twinDoc: twin.New(regNow), Device: &Device{DeviceID: "dev-1", GenerationID: "638000000000000001", Status: StatusEnabled,
			ConnectionState: Disconnected, StatusReason: &reason}, ETagSeq: 3, ModelID: "dtmi:com:example:Thermostat;1"},
		{twinDoc: d, Device: &Device{DeviceID: "edge", Capabilities: Capabilities{IotEdge: true},
			DeviceScope: "ms-azure-iot-edge://edge-638000000000000002", ParentScopes: []string{"a", "b"}},
			Configs: map[string]string{"c1": "Applied"}, Applied: map[string]appliedSetting{},
			EdgeContent: map[string]map[string]json.RawMessage{"$edgeAgent": {"properties.desired": json.RawMessage(`{"a":1}`)}}},
		{twinDoc: twin.New(regNow), Module: &Module{ModuleID: "m", DeviceID: "dev-1", ManagedBy: "iotEdge"}, ETagSeq: 1},
		{Twin: json.RawMessage(`{"format":1}`)},
		{Device: &Device{DeviceID: "twinless"}},
	}
}

// encodeRecord writes what json.Marshal writes, but for the twin, which
// it copies as the twin engine encoded it (json.Marshal would escape <, >,
// & and U+2028 in it); unmarshalRecord reads back what json.Unmarshal
// reads: every reader sees the same record.
func TestRecordCodecMatchesEncodingJSON(t *testing.T) {
	for i, r := range sampleRecords(t) {
		checkEncode(t, r)
		b, err := encodeRecord(r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		checkDecode(t, b)
	}
}

// checkEncode holds encodeRecord to json.Marshal on r.
func checkEncode(t *testing.T, r *record) {
	t.Helper()
	got, err := encodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(r) // r.Twin now holds the twin encodeRecord wrote
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Twin) > 0 && !bytes.HasPrefix(got, append([]byte(twinPrefix), r.Twin...)) {
		t.Fatalf("%s does not start with the twin as given:\n%s", got, r.Twin)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("encoded record is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Fatalf("encoded record differs from json.Marshal's (-want +got):\n%s", diff)
	}
}

// checkDecode holds unmarshalRecord to json.Unmarshal on b.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	var want, got record
	wantErr := json.Unmarshal(b, &want)
	gotErr := unmarshalRecord(b, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%s: unmarshalRecord error %v, json.Unmarshal error %v", b, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !bytes.Equal(got.Twin, want.Twin) {
		t.Fatalf("%s: unmarshalRecord's twin\n%s\njson.Unmarshal's\n%s", b, got.Twin, want.Twin)
	}
	if len(got.Twin) > 0 && len(b) > len(twinPrefix) && &got.Twin[0] == &b[len(twinPrefix)] {
		t.Fatal("the decoded twin aliases the stored bytes")
	}
	got.Twin, want.Twin = nil, nil
	g, err := json.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Fatalf("%s: unmarshalRecord decoded\n%s\njson.Unmarshal\n%s", b, g, w)
	}
}

// FuzzRecordCodec holds encodeRecord and unmarshalRecord to encoding/json
// on records made of fuzzed members and twins, and unmarshalRecord alone on
// arbitrary bytes that start like a record.
func FuzzRecordCodec(f *testing.F) {
	for _, r := range sampleRecords(f) {
		b, err := encodeRecord(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("d", "", int64(1), b)
	}
	f.Add("x\u2028", "m", int64(-1), []byte(`{"twin":{"a":"}"},"etagSeq":2}`))
	f.Add("", "", int64(0), []byte(`{"twin":{}}`))
	f.Add("", "", int64(0), []byte(`{"twin":{},"twin":{"b":1}}`))
	f.Fuzz(func(t *testing.T, deviceID, modelID string, seq int64, raw []byte) {
		// The twin is checked when the twin engine decodes it, not here:
		// only records whose twin is JSON must decode as json.Unmarshal does.
		if tw, _, ok := splitTwin(raw); !ok || json.Valid(tw) {
			checkDecode(t, raw)
		}
		var tw bytes.Buffer
		if json.Compact(&tw, raw) != nil || tw.Len() == 0 || tw.Bytes()[0] != '{' {
			return
		}
		r := &record{Twin: tw.Bytes(), Device: &Device{DeviceID: deviceID}, ETagSeq: seq, ModelID: modelID}
		checkEncode(t, r)
		b, err := encodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		checkDecode(t, b)
	})
}

// BenchmarkRecordCodec compares encodeRecord and unmarshalRecord with
// encoding/json on the whole record, for a new device and for one whose
// twin carries 1 KB of reported properties. Compare the ns/op of one run.
func BenchmarkRecordCodec(b *testing.B) {
	reported := twin.New(regNow)
	if _, err := reported.PatchReported([]byte(`{"firmware":{"version":"1.4.2","state":"current","lastChecked":"2024-05-02T09:00:00Z"},`+
		`"telemetryConfig":{"sendFrequency":"5m","fields":["temperature","humidity","pressure","battery"]},`+
		`"location":{"lat":47.6062,"lon":-122.3321,"site":"B7-north"},"rebootTime":"2024-05-02T08:59:00Z"}`), regNow); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		doc  *twin.Doc
	}{{"new", twin.New(regNow)}, {"reported", reported}} {
		r := &record{twinDoc: c.doc, Device: &Device{DeviceID: "dev-000001", GenerationID: "638000000000000001",
			Status: StatusEnabled, ConnectionState: Disconnected}, ETagSeq: 4}
		stored, err := encodeRecord(r)
		if err != nil {
			b.Fatal(err)
		}
		r.twinDoc = nil
		b.Run(c.name+"/encode/json.Marshal", func(b *testing.B) {
			for b.Loop() {
				if _, err := json.Marshal(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/encode/encodeRecord", func(b *testing.B) {
			for b.Loop() {
				if _, err := encodeRecord(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/decode/json.Unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(stored)))
			for b.Loop() {
				var d record
				if err := json.Unmarshal(stored, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/decode/unmarshalRecord", func(b *testing.B) {
			b.SetBytes(int64(len(stored)))
			for b.Loop() {
				var d record
				if err := unmarshalRecord(stored, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
