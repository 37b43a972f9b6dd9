// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRecordTelemetry: 64 devices each recording 256-byte messages one
// after another on a store that fsyncs, as MQTT senders waiting for their
// PUBACK do. Besides the wall time per message it reports the process's CPU
// time per message, which is what a saturated machine runs out of.
func BenchmarkRecordTelemetry(b *testing.B) {
	h := newDurableBenchHub(b)
	body := make([]byte, 256)
	var next atomic.Int64
	cpu0 := cpuTime()
	b.SetParallelism(32) // with GOMAXPROCS=2: 64 senders
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := Identity{DeviceID: fmt.Sprintf("dev%d", next.Add(1))}
		for pb.Next() {
			m := &Message{Body: body, Properties: map[string]string{"type": "bench"}}
			if err := h.RecordTelemetry(context.Background(), id, "sas", "mqtt", m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEncodeMessage: a 256-byte message with one property, encoded
// for the log by the sender, against json.Marshal of the same message.
func BenchmarkEncodeMessage(b *testing.B) {
	m := &Message{DeviceID: "device-000042", AuthMethod: "sas", GenerationID: "638000000000000042", Transport: "mqtt",
		Properties: map[string]string{"type": "bench"}, Body: make([]byte, 256)}
	b.Run("encodeForLog", func(b *testing.B) {
		for b.Loop() {
			_ = encodeForLog(m)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(m)
		}
	})
}
