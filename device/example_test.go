// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
)

// The basic flow: connect with a device connection string, send telemetry
// with properties the hub can route on, and close.
func Example() {
	ctx := context.Background()
	c, err := device.NewFromConnectionString(os.Getenv("IOTHUB_DEVICE_CONNECTION_STRING"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	err = c.SendMessage(ctx, &device.Message{
		Body:            []byte(`{"temperature":21.5}`),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Properties:      map[string]string{"alert": "false"},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Against the local emulator the host name carries a port and the hub
// certificate comes from the emulator's CA. Construction does not connect.
func ExampleNewFromConnectionString() {
	c, err := device.NewFromConnectionString(
		"HostName=localhost:8883;DeviceId=thermostat;ModuleId=sensor;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		device.WithTokenLifetime(30*time.Minute),
		device.WithRetryPolicy(device.ExponentialBackoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.DeviceID(), c.ModuleID(), c.State())
	// Output: thermostat sensor disconnected
}

// A device authenticated by its certificate, over WebSockets (port 443).
func ExampleNewFromX509() {
	cert, err := tls.LoadX509KeyPair("device.pem", "device.key")
	if err != nil {
		log.Fatal(err)
	}
	c, err := device.NewFromX509("myhub.azure-devices.net", "thermostat", "", cert, device.WithWebSockets())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// Register method handlers before connecting; the client subscribes when it
// connects and again after every reconnect.
func ExampleClient_HandleMethod() {
	c, err := device.NewFromConnectionString(os.Getenv("IOTHUB_DEVICE_CONNECTION_STRING"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.HandleMethod("setFan", func(ctx context.Context, req *device.MethodRequest) (int, any) {
		var in struct{ Speed int }
		if err := json.Unmarshal(req.Payload, &in); err != nil {
			return 400, map[string]string{"error": "payload must be {\"speed\": n}"}
		}
		return 200, map[string]int{"speed": in.Speed}
	})
	c.SetDefaultMethodHandler(func(ctx context.Context, req *device.MethodRequest) (int, any) {
		return 404, map[string]string{"error": "no method " + req.Name}
	})
	if err := c.Connect(context.Background()); err != nil {
		log.Fatal(err)
	}
	select {} // serve methods
}

// The tutorial style: wait for a request, then answer it.
func ExampleClient_ReceiveMethodRequest() {
	ctx := context.Background()
	c, err := device.NewFromConnectionString(os.Getenv("IOTHUB_DEVICE_CONNECTION_STRING"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for {
		req, err := c.ReceiveMethodRequest(ctx, "reboot")
		if err != nil {
			log.Fatal(err)
		}
		resp := device.NewMethodResponse(req, 200, map[string]string{"result": "rebooting"})
		if err := c.SendMethodResponse(ctx, resp); err != nil {
			log.Print(err)
		}
	}
}

// Read the twin, report state, and follow desired-property changes.
func ExampleClient_GetTwin() {
	ctx := context.Background()
	c, err := device.NewFromConnectionString(os.Getenv("IOTHUB_DEVICE_CONNECTION_STRING"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.OnDesiredPropertiesUpdate(func(patch device.Properties, version int64) {
		log.Printf("desired v%d: %v", version, patch)
	})
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	twin, err := c.GetTwin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("fanSpeed %v at desired version %d", twin.Desired["fanSpeed"], twin.Desired.Version())
	v, err := c.UpdateReportedProperties(ctx, map[string]any{"fanSpeed": twin.Desired["fanSpeed"]})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("reported version %d", v)
}

// Receive cloud-to-device messages one at a time.
func ExampleClient_ReceiveMessage() {
	ctx := context.Background()
	c, err := device.NewFromConnectionString(os.Getenv("IOTHUB_DEVICE_CONNECTION_STRING"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	for {
		m, err := c.ReceiveMessage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("message %s: %s %v", m.MessageID, m.Body, m.Properties)
	}
}

// startEmulator runs an in-memory emulator on random loopback ports, as a
// program or TestMain would; in a test, emulator.RunT(t) does this in one
// line and closes it at the end of the test.
func startEmulator() *emulator.Server {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	return srv
}

// Hub failures are *device.Error values: errors.Is matches them against the
// sentinels, the same names the service package has, and errors.As reads
// the hub's status, code and message. Here the emulator refuses a reported
// property whose name the hub does not allow.
func ExampleError() {
	srv := startEmulator()
	defer srv.Close()
	cs, err := srv.CreateDevice("thermostat")
	if err != nil {
		log.Fatal(err)
	}
	c, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}

	_, err = c.UpdateReportedProperties(ctx, map[string]any{"fan speed": 3})
	fmt.Println(errors.Is(err, device.ErrBadRequest))
	var he *device.Error
	if errors.As(err, &he) {
		fmt.Println(he.Op, he.StatusCode, he.Code, he.CodeName)
	}
	// Output:
	// true
	// UpdateReportedProperties 400 400004 ArgumentInvalid
}

// A refused connection is an *Error too: a wrong key gives the hub's
// "not authorized" CONNACK, which matches ErrUnauthorized.
func ExampleErrUnauthorized() {
	srv := startEmulator()
	defer srv.Close()
	cs, err := srv.CreateDevice("thermostat")
	if err != nil {
		log.Fatal(err)
	}
	before, _, _ := strings.Cut(cs, "SharedAccessKey=")
	wrongKey := before + "SharedAccessKey=" + base64.StdEncoding.EncodeToString([]byte("not the device's key"))
	c, err := device.NewFromConnectionString(wrongKey, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Connect(context.Background())
	fmt.Println(errors.Is(err, device.ErrUnauthorized))
	// Output: true
}
