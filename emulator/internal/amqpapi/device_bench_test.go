// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// The device benchmarks run the same operation for an AMQP device and an
// MQTT device on one hub in one run, so that their ratio says what AMQP
// costs beside MQTT on this machine: compare the amqp and mqtt lines of
// each group.

// BenchmarkDeviceMethodRoundTrip: hub.InvokeMethod against a device that
// answers at once, over AMQP (go-amqp) and over MQTT (paho).
func BenchmarkDeviceMethodRoundTrip(b *testing.B) {
	e := newEnv(b)
	addr := e.withMQTT(b)
	req := hub.MethodRequest{Name: "echo", Payload: []byte(`{"n":1}`), ResponseTimeout: 30 * time.Second}
	run := func(b *testing.B, id hub.Identity) {
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			res, err := e.hub.InvokeMethod(context.Background(), id, req)
			if err != nil || res.Status != 200 {
				b.Fatalf("InvokeMethod: %+v, %v", res, err)
			}
		}
	}
	// Set up once: with -count, each sub-benchmark runs again on them.
	amqpID := hub.Identity{DeviceID: "bench-amqp-m"}
	dev := e.connectDevice(b, viaTLS, amqpID, e.addDevice(b, amqpID.DeviceID))
	snd, rcv := dev.methodLinks(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := rcv.Receive(ctx, nil)
			if err != nil {
				return
			}
			_ = rcv.AcceptMessage(ctx, m)
			_ = snd.Send(ctx, &goamqp.Message{Properties: &goamqp.MessageProperties{CorrelationID: m.Properties.CorrelationID},
				ApplicationProperties: map[string]any{"IoThub-status": int32(200)}, Data: m.Data}, nil)
		}
	}()
	b.Cleanup(func() { cancel(); wg.Wait() })
	mqttID := hub.Identity{DeviceID: "bench-mqtt-m"}
	c, _ := e.mqttDevice(b, addr, mqttID, e.addDevice(b, mqttID.DeviceID))
	tok := c.Subscribe("$iothub/methods/POST/#", 0, func(c paho.Client, m paho.Message) {
		u, _ := url.Parse("x://h/" + m.Topic())
		c.Publish("$iothub/methods/res/200/?$rid="+u.Query().Get("$rid"), 0, false, m.Payload())
	})
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	b.Run("transport=amqp", func(b *testing.B) { run(b, amqpID) })
	b.Run("transport=mqtt", func(b *testing.B) { run(b, mqttID) })
}

// BenchmarkDeviceReportedPatch: reported-property patches, each answered
// once durable, from devices patching one after another, over AMQP (the
// twin pair) and over MQTT ($iothub/twin/PATCH).
func BenchmarkDeviceReportedPatch(b *testing.B) {
	for _, devices := range []int{1, 8} {
		e := newEnv(b)
		addr := e.withMQTT(b)
		var amqpClients []*twinClient
		var mqttClients []*mqttTwin
		for i := range devices {
			id := hub.Identity{DeviceID: fmt.Sprintf("bench-amqp-t%d", i)}
			amqpClients = append(amqpClients, e.twinClient(b, e.connectDevice(b, viaTLS, id, e.addDevice(b, id.DeviceID))))
			id = hub.Identity{DeviceID: fmt.Sprintf("bench-mqtt-t%d", i)}
			c, _ := e.mqttDevice(b, addr, id, e.addDevice(b, id.DeviceID))
			mqttClients = append(mqttClients, newMQTTTwin(b, c))
		}
		b.Run(fmt.Sprintf("transport=amqp/devices=%d", devices), func(b *testing.B) {
			patchLoop(b, devices, func(i, n int) error {
				// No testing.TB on the way: its helpers lock the benchmark
				// (and ctxT piles up cleanups), which MQTT's side does not.
				ctx, cancel := context.WithTimeout(context.Background(), waitTime)
				defer cancel()
				a, err := amqpClients[i].request(ctx, "PATCH", "/properties/reported", nil, []byte(`{"n":`+strconv.Itoa(n)+`}`))
				if err == nil && a.status != 204 {
					err = fmt.Errorf("status %d", a.status)
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("transport=mqtt/devices=%d", devices), func(b *testing.B) {
			patchLoop(b, devices, func(i, n int) error { return mqttClients[i].patch(n) })
		})
	}
}

// patchLoop runs b.N patches spread over one goroutine per device.
func patchLoop(b *testing.B, devices int, patch func(device, n int) error) {
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1))
				if n > b.N {
					return
				}
				if err := patch(i, n); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// mqttTwin sends reported patches over MQTT and waits for each answer.
type mqttTwin struct {
	c       paho.Client
	seq     int
	answers chan string
}

func newMQTTTwin(tb testing.TB, c paho.Client) *mqttTwin {
	tb.Helper()
	t := &mqttTwin{c: c, answers: make(chan string, 1)}
	tok := c.Subscribe("$iothub/twin/res/#", 0, func(_ paho.Client, m paho.Message) { t.answers <- m.Topic() })
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		tb.Fatal(tok.Error())
	}
	return t
}

func (t *mqttTwin) patch(n int) error {
	t.seq++
	t.c.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+strconv.Itoa(t.seq), 0, false, `{"n":`+strconv.Itoa(n)+`}`)
	select {
	case topic := <-t.answers:
		if !strings.HasPrefix(topic, "$iothub/twin/res/204/") {
			return fmt.Errorf("answer %s", topic)
		}
		return nil
	case <-time.After(waitTime):
		return fmt.Errorf("no answer")
	}
}
