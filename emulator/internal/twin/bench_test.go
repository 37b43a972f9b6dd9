// SPDX-License-Identifier: MIT

package twin

import (
	"testing"
)

// realisticReported is the reported section of a typical gateway-class
// device: identity, firmware, network, a few sensor groups, a config echo.
const realisticReported = `{
 "deviceInformation":{"manufacturer":"Contoso","model":"TH-200","swVersion":"4.2.1","osName":"Linux","processorArchitecture":"arm64","totalStorage":15872,"totalMemory":2048},
 "firmware":{"current":{"version":"4.2.1","installedAt":"2024-04-30T12:00:00Z"},"pending":null,"status":"current"},
 "network":{"type":"cellular","operator":"Example","rssi":-71,"ip":"10.12.0.4","apn":"iot.example"},
 "sensors":{"temperature":{"value":21.75,"unit":"C","ok":true},"humidity":{"value":48.2,"unit":"%","ok":true},"pressure":{"value":1013.2,"unit":"hPa","ok":true}},
 "telemetry":{"interval":30,"lastSent":"2024-05-02T09:09:30Z","count":18231,"queue":0},
 "config":{"fanSpeed":{"value":3,"ac":200,"av":7,"ad":"applied"},"schedule":["06:00","22:00"]},
 "battery":87,"uptime":1209600,"lastBoot":"2024-04-18T09:10:00Z"
}`

func BenchmarkPatchReported(b *testing.B) {
	d := New(t0)
	if _, err := d.PatchReported([]byte(realisticReported), at(1)); err != nil {
		b.Fatal(err)
	}
	patch := []byte(`{"telemetry":{"lastSent":"2024-05-02T09:10:00Z","count":18232},"sensors":{"temperature":{"value":21.8}},"battery":86}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.PatchReported(patch, at(2+i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoredPatchReported measures what the hub core does per device
// report: load the stored twin, patch it, store it again.
func BenchmarkStoredPatchReported(b *testing.B) {
	d := New(t0)
	if _, err := d.PatchReported([]byte(realisticReported), at(1)); err != nil {
		b.Fatal(err)
	}
	blob, _ := d.Marshal()
	patch := []byte(`{"telemetry":{"lastSent":"2024-05-02T09:10:00Z","count":18232},"battery":86}`)
	b.ReportAllocs()
	for b.Loop() {
		u, err := Unmarshal(blob)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := u.PatchReported(patch, at(2)); err != nil {
			b.Fatal(err)
		}
		if _, err := u.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}
