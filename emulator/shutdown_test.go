// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/testutil"
)

// TestCloseFinishesRequestsInFlight: a direct method being invoked when
// the emulator is told to stop still gets its answer, and Close does not
// linger once nothing is in flight.
func TestCloseFinishesRequestsInFlight(t *testing.T) {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cs, _ := srv.CreateDevice("slow")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	dc, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	working := make(chan struct{}, 2)
	dc.HandleMethod("work", func(ctx context.Context, r *device.MethodRequest) (int, any) {
		select {
		case working <- struct{}{}:
		default:
		}
		time.Sleep(300 * time.Millisecond) // the work: Close must wait for it
		return 200, "done"
	})
	if err := dc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	rest := newREST(t, srv, srv.ConnectionString())
	testutil.Eventually(t, "the device to answer methods", func() bool {
		code, _ := rest.do("POST", "/twins/slow/methods", map[string]any{"methodName": "work", "responseTimeoutInSeconds": 5})
		return code == 200
	})
	for len(working) > 0 {
		<-working
	}
	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() {
		code, body := rest.do("POST", "/twins/slow/methods", map[string]any{"methodName": "work", "responseTimeoutInSeconds": 5})
		got <- result{code, string(body)}
	}()
	<-working // the request is in flight: the device is working on it
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r := <-got
	if r.code != 200 || r.body != `{"status":200,"payload":"done"}` {
		t.Fatalf("in-flight method during Close: got %d %s", r.code, r.body)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Close took %v with one short request in flight", d)
	}
}
