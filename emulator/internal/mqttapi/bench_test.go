// SPDX-License-Identifier: MIT

package mqttapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// runParallel runs op from `goroutines` goroutines in total.
func runParallel(b *testing.B, goroutines int, op func()) {
	b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op()
		}
	})
}

// echoDevices connects n devices that answer every method at once.
func echoDevices(b *testing.B, e *env, n int) []hub.Identity {
	b.Helper()
	ids := make([]hub.Identity, n)
	for i := range ids {
		ids[i] = hub.Identity{DeviceID: "bench" + strconv.Itoa(i)}
		key := e.addDevice(b, ids[i].DeviceID)
		c := e.mustConnect(b, dialer{clientID: ids[i].DeviceID, password: token(b, ids[i], "", key, farFuture()), clean: true})
		tok := c.Subscribe(filterMethods, 0, func(c paho.Client, m paho.Message) {
			c.Publish("$iothub/methods/res/200/?$rid="+ridOf(b, m.Topic()), 0, false, m.Payload())
		})
		if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
	}
	return ids
}

// BenchmarkMethodRoundTrip measures hub.InvokeMethod against paho devices
// that answer at once: request out through the adapter, answer back in.
func BenchmarkMethodRoundTrip(b *testing.B) {
	cases := []struct{ devices, parallel int }{{1, 1}, {1, 64}, {1000, 64}}
	for _, c := range cases {
		b.Run(fmt.Sprintf("devices=%d/parallel=%d", c.devices, c.parallel), func(b *testing.B) {
			e := newEnv(b)
			ids := echoDevices(b, e, c.devices)
			req := hub.MethodRequest{Name: "echo", Payload: []byte(`{"n":1}`), ResponseTimeout: 30 * time.Second}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			runParallel(b, c.parallel, func() {
				id := ids[next.Add(1)%uint64(len(ids))]
				res, err := e.hub.InvokeMethod(context.Background(), id, req)
				if err != nil || res.Status != 200 {
					b.Errorf("InvokeMethod: %+v, %v", res, err)
				}
			})
		})
	}
}

// BenchmarkBareMochiRoundTrip is the baseline: two paho clients exchanging
// a request and an answer through a plain mochi broker over TLS, allow-all
// auth, no hub.
func BenchmarkBareMochiRoundTrip(b *testing.B) {
	for _, parallel := range []int{1, 64} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			addr, roots := bareBroker(b)
			dial := func(id string) paho.Client {
				o := paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(id).
					SetTLSConfig(&tls.Config{RootCAs: roots, ServerName: hostName}).SetAutoReconnect(false)
				c := paho.NewClient(o)
				if tok := c.Connect(); !tok.WaitTimeout(waitTime) || tok.Error() != nil {
					b.Fatal(tok.Error())
				}
				b.Cleanup(func() { c.Disconnect(0) })
				return c
			}
			device, service := dial("device"), dial("service")
			var waiters sync.Map // request id -> chan struct{}
			sub := func(c paho.Client, filter string, h paho.MessageHandler) {
				if tok := c.Subscribe(filter, 0, h); !tok.WaitTimeout(waitTime) || tok.Error() != nil {
					b.Fatal(tok.Error())
				}
			}
			sub(device, "req/#", func(c paho.Client, m paho.Message) {
				c.Publish("res/"+m.Topic()[len("req/"):], 0, false, m.Payload())
			})
			sub(service, "res/#", func(_ paho.Client, m paho.Message) {
				if ch, ok := waiters.LoadAndDelete(m.Topic()[len("res/"):]); ok {
					close(ch.(chan struct{}))
				}
			})
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			runParallel(b, parallel, func() {
				id := strconv.FormatUint(next.Add(1), 10)
				ch := make(chan struct{})
				waiters.Store(id, ch)
				service.Publish("req/"+id, 0, false, `{"n":1}`)
				select {
				case <-ch:
				case <-time.After(waitTime):
					b.Error("no answer")
				}
			})
		})
	}
}

// allowAll is mochi's auth.AllowHook, restated: importing mochi's auth
// package needs gopkg.in/yaml.v3, which go.sum does not list.
type allowAll struct{ mqtt.HookBase }

func (h *allowAll) ID() string { return "allow-all" }
func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// bareBroker starts mochi with an allow-all hook on a TLS listener.
func bareBroker(b *testing.B) (addr string, roots *x509.CertPool) {
	b.Helper()
	mat, err := certs.Ensure(b.TempDir(), []string{hostName}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), SysTopicResendInterval: 24 * 60 * 60})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		b.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0",
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{mat.Server}}})
	if err := s.AddListener(l); err != nil {
		b.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return l.Address(), mat.Pool
}

// BenchmarkReportedPatch measures a device's reported-properties PATCH
// until its 204, through the adapter and the hub's durable write.
func BenchmarkReportedPatch(b *testing.B) {
	e := newEnv(b)
	c := e.connectDevice(b, "dev1", false)
	var waiters sync.Map // rid -> chan string (status)
	tok := c.Subscribe(filterTwinResponses, 0, func(_ paho.Client, m paho.Message) {
		if ch, ok := waiters.LoadAndDelete(ridOf(b, m.Topic())); ok {
			ch.(chan string) <- m.Topic()
		}
	})
	if !tok.WaitTimeout(waitTime) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rid := strconv.Itoa(i)
		ch := make(chan string, 1)
		waiters.Store(rid, ch)
		c.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 0, false, `{"counter":`+rid+`}`)
		select {
		case topic := <-ch:
			if topic[len(prefixTwinResponse):len(prefixTwinResponse)+3] != "204" {
				b.Fatalf("reported patch answered %q, want 204", topic)
			}
		case <-time.After(waitTime):
			b.Fatal("no twin response")
		}
	}
}
