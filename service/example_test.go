// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// The examples run against the real emulator, in process. With a real hub,
// take the connection string from the portal and leave out WithRootCAs:
// the hub's certificate is publicly trusted.

// startEmulator runs an in-memory emulator on random loopback ports and
// returns it with a client for its iothubowner policy. In a test,
// emulator.RunT(t) starts one in a line and closes it when the test ends.
func startEmulator() (*emulator.Server, *service.Client) {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	c, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	return srv, c
}

func ExampleNewFromConnectionString() {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// HostName=localhost:<port>;SharedAccessKeyName=iothubowner;SharedAccessKey=...
	c, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	d, err := c.CreateDevice(context.Background(), &service.Device{DeviceID: "thermostat-1"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.DeviceID, d.Status, d.Authentication.Type)
	// Output: thermostat-1 enabled sas
}

func ExampleDeviceConnectionString() {
	srv, c := startEmulator()
	defer srv.Close()

	// Empty keys ask the hub to generate them; these are given.
	auth := service.SASAuth("cHJpbWFyeS1rZXktZm9yLXRoZS1leGFtcGxl", "c2Vjb25kYXJ5LWtleS1mb3ItdGhlLWV4YW1wbGU=")
	d, err := c.CreateDevice(context.Background(), &service.Device{DeviceID: "dev1", Authentication: auth})
	if err != nil {
		log.Fatal(err)
	}
	devCS, err := service.DeviceConnectionString("myhub.azure-devices.net", d)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(devCS)
	// Output: HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=cHJpbWFyeS1rZXktZm9yLXRoZS1leGFtcGxl
}

// Failed calls return an *Error: errors.Is matches it against the
// sentinels (the same names as in the device package), and errors.As reads
// the hub's status, code and message.
func ExampleError() {
	srv, c := startEmulator()
	defer srv.Close()
	ctx := context.Background()

	_, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"})
	fmt.Println(errors.Is(err, service.ErrAlreadyExists))

	var e *service.Error
	if errors.As(err, &e) {
		fmt.Println(e.Op, e.StatusCode, e.Code, e.CodeName)
	}
	// Output:
	// true
	// CreateDevice 409 409001 DeviceAlreadyExists
}

// An update that names the etag it read fails with ErrPreconditionFailed
// once someone else has changed the identity.
func ExampleClient_UpdateDevice() {
	srv, c := startEmulator()
	defer srv.Close()
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		log.Fatal(err)
	}

	mine, err := c.GetDevice(ctx, "dev1")
	if err != nil {
		log.Fatal(err)
	}
	theirs := *mine
	theirs.Status = service.StatusDisabled
	if _, err := c.UpdateDevice(ctx, &theirs); err != nil {
		log.Fatal(err)
	}

	mine.StatusReason = "maintenance"
	_, err = c.UpdateDevice(ctx, mine)
	fmt.Println(errors.Is(err, service.ErrPreconditionFailed))
	// Output: true
}

func ExampleClient_UpdateTwin() {
	srv, c := startEmulator()
	defer srv.Close()
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		log.Fatal(err)
	}

	tags, err := service.NewTwinCollection(map[string]any{"building": "B7"})
	if err != nil {
		log.Fatal(err)
	}
	desired, err := service.NewTwinCollection(map[string]any{"fanSpeed": 3})
	if err != nil {
		log.Fatal(err)
	}
	// An empty etag updates unconditionally; pass twin.ETag from GetTwin
	// for optimistic concurrency.
	twin, err := c.UpdateTwin(ctx, "dev1", &service.Twin{Tags: tags, Properties: service.TwinProperties{Desired: desired}}, "")
	if err != nil {
		log.Fatal(err)
	}
	var want struct {
		FanSpeed int `json:"fanSpeed"`
	}
	if err := twin.Properties.Desired.Decode(&want); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(twin.Tags), want.FanSpeed, twin.Properties.Desired.Version())
	// Output: {"building":"B7"} 3 2
}

// A direct method reaches a connected device client, here the device
// package's, and returns the status and payload it answered with.
func ExampleClient_InvokeMethod() {
	srv, c := startEmulator()
	defer srv.Close()
	ctx := context.Background()

	devCS, err := srv.CreateDevice("dev1") // with the device protocol's port
	if err != nil {
		log.Fatal(err)
	}
	dev, err := device.NewFromConnectionString(devCS, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	dev.HandleMethod("reboot", func(ctx context.Context, req *device.MethodRequest) (int, any) {
		return 200, map[string]string{"result": "rebooting in " + string(req.Payload)}
	})
	if err := dev.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	res, err := c.InvokeMethod(ctx, "dev1", service.MethodCall{Name: "reboot", Payload: 5, ResponseTimeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, string(res.Payload))
	// Output: 200 {"result":"rebooting in 5"}
}

// A device that is not connected fails the call with ErrDeviceNotOnline; one
// that does not answer within the response timeout with ErrTimeout.
func ExampleClient_InvokeMethod_offline() {
	srv, c := startEmulator()
	defer srv.Close()
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		log.Fatal(err)
	}

	_, err := c.InvokeMethod(ctx, "dev1", service.MethodCall{Name: "reboot"})
	switch {
	case errors.Is(err, service.ErrDeviceNotOnline):
		fmt.Println("device is offline")
	case errors.Is(err, service.ErrTimeout):
		fmt.Println("device did not answer in time")
	case err != nil:
		log.Fatal(err)
	}
	// Output: device is offline
}

func ExampleClient_Query() {
	srv, c := startEmulator()
	defer srv.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: id}); err != nil {
			log.Fatal(err)
		}
	}

	for twin, err := range c.Query("SELECT * FROM devices", 100).Twins(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(twin.DeviceID, twin.Status)
	}
	// Output:
	// a enabled
	// b enabled
	// c enabled
}

func ExampleQuery_NextPage() {
	srv, c := startEmulator()
	defer srv.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: id}); err != nil {
			log.Fatal(err)
		}
	}

	q := c.Query("SELECT * FROM devices", 2)
	for q.HasMore() {
		page, err := q.NextPage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(page), "items of type", q.ItemType())
	}
	// Output:
	// 2 items of type Twin
	// 1 items of type Twin
}

// Retries are on by default for calls that are safe to repeat. A policy of
// one's own goes in with WithRetryPolicy; tests usually want WithoutRetries,
// so that the hub's failures show.
func ExampleWithRetryPolicy() {
	srv, _ := startEmulator()
	defer srv.Close()

	c, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()),
		service.WithRetryPolicy(service.ExponentialBackoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, MaxFailures: 6}))
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.GetDevice(context.Background(), "ghost") // a 404 is an answer, not retried
	fmt.Println(errors.Is(err, service.ErrNotFound))
	// Output: true
}

// A cloud-to-device message goes over AMQP; the device completes it, and
// the hub reports that as feedback, since the message asked for it.
func ExampleClient_SendC2D() {
	srv, c := startEmulator()
	defer srv.Close()
	defer c.Close() // the client's AMQP connection
	ctx := context.Background()

	devCS, err := srv.CreateDevice("dev1")
	if err != nil {
		log.Fatal(err)
	}
	dev, err := device.NewFromConnectionString(devCS, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	got := make(chan string, 1)
	dev.OnMessage(func(m *device.Message) { got <- string(m.Body) })
	if err := dev.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	err = c.SendC2D(ctx, "dev1", &service.C2DMessage{Body: []byte("fan on"), MessageID: "m1", Ack: service.AckFull})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("device got:", <-got)

	r := c.FeedbackReceiver()
	defer r.Close()
	b, err := r.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range b.Records {
		fmt.Println("feedback:", f.OriginalMessageID, f.StatusCode)
	}
	if err := r.Complete(ctx, b); err != nil {
		log.Fatal(err)
	}
	// Output:
	// device got: fan on
	// feedback: m1 Success
}

// Telemetry is read from the hub's Event Hub-compatible endpoint, which
// the client finds by the hub's redirect. By default a receiver starts at
// the end: it sees what devices send from then on.
func ExampleClient_NewEventReceiver() {
	srv, c := startEmulator()
	defer srv.Close()
	defer c.Close()
	ctx := context.Background()

	r, err := c.NewEventReceiver(ctx, service.EventReceiverOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	devCS, err := srv.CreateDevice("thermostat-1")
	if err != nil {
		log.Fatal(err)
	}
	dev, err := device.NewFromConnectionString(devCS, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	if err := dev.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	if err := dev.SendMessage(ctx, &device.Message{Body: []byte(`{"t":21.5}`), Properties: map[string]string{"unit": "C"}}); err != nil {
		log.Fatal(err)
	}

	ev, err := r.Receive(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.DeviceID, string(ev.Body), ev.Properties["unit"], ev.MessageSource)
	// Output: thermostat-1 {"t":21.5} C Telemetry
}

// A backend that has the endpoint's own connection string (the portal's
// "Event Hub-compatible endpoint", or EventHubEndpoint's) reads it
// directly, here from the oldest retained event.
func ExampleNewEventReceiverFromConnectionString() {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	devCS, err := srv.CreateDevice("dev1")
	if err != nil {
		log.Fatal(err)
	}
	dev, err := device.NewFromConnectionString(devCS, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	if err := dev.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for _, body := range []string{"one", "two"} {
		if err := dev.SendMessage(ctx, &device.Message{Body: []byte(body)}); err != nil {
			log.Fatal(err)
		}
	}

	// Endpoint=sb://localhost:<port>/;SharedAccessKeyName=iothubowner;SharedAccessKey=...;EntityPath=localhost
	r, err := service.NewEventReceiverFromConnectionString(ctx, srv.EventHubConnectionString(),
		service.EventReceiverOptions{Start: service.EventPosition{Earliest: true}}, service.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	for range 2 {
		ev, err := r.Receive(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.DeviceID, ev.SequenceNumber, string(ev.Body))
	}
	// Output:
	// dev1 0 one
	// dev1 1 two
}
