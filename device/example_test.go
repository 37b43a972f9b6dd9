// SPDX-License-Identifier: MIT

package device_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/iothubemulator/iothub/device"
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

// Hub failures are *device.Error values that match sentinels by status.
func ExampleError() {
	err := fmt.Errorf("update reported properties: %w", &device.Error{Status: 429, Code: 429001, Message: "Throttled"})
	var he *device.Error
	if errors.As(err, &he) {
		fmt.Println(he.Status, he.Code, errors.Is(err, device.ErrThrottled))
	}
	// Output: 429 429001 true
}
