// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/iothubemulator/iothub/service"
)

// The examples run against a small in-memory stand-in (examplehub_test.go).
// With a real hub or the emulator, take the connection string from the
// portal or from the emulator and drop the WithRootCAs option when the
// certificate is publicly trusted.

func ExampleNewFromConnectionString() {
	cs, trust, stop := startExampleHub()
	defer stop()

	c, err := service.NewFromConnectionString(cs, trust)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	d, err := c.CreateDevice(ctx, &service.Device{DeviceID: "thermostat-1"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.DeviceID, d.Status, d.Authentication.Type)
	// Output: thermostat-1 enabled sas
}

func ExampleDeviceConnectionString() {
	cs, trust, stop := startExampleHub()
	defer stop()
	c, err := service.NewFromConnectionString(cs, trust)
	if err != nil {
		log.Fatal(err)
	}

	// Empty keys ask the hub to generate them; the answer carries them.
	d, err := c.CreateDevice(context.Background(), &service.Device{DeviceID: "dev1", Authentication: service.SASAuth("", "")})
	if err != nil {
		log.Fatal(err)
	}
	devCS, err := service.DeviceConnectionString("myhub.azure-devices.net", d)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(devCS)
	// Output: HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=cHJpbWFyeS1rZXk=
}

func ExampleIsAlreadyExists() {
	cs, trust, stop := startExampleHub()
	defer stop()
	c, err := service.NewFromConnectionString(cs, trust)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		_, err = c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"})
	}
	fmt.Println(service.IsAlreadyExists(err))

	var e *service.Error
	if errors.As(err, &e) {
		fmt.Println(e.StatusCode, e.Code, e.CodeName)
	}
	// Output:
	// true
	// 409 409001 DeviceAlreadyExists
}

func ExampleClient_UpdateTwin() {
	cs, trust, stop := startExampleHub()
	defer stop()
	c, err := service.NewFromConnectionString(cs, trust)
	if err != nil {
		log.Fatal(err)
	}
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
	fmt.Println(string(twin.Tags), want.FanSpeed)
	// Output: {"building":"B7"} 3
}

func ExampleClient_InvokeMethod() {
	cs, trust, stop := startExampleHub()
	defer stop()
	c, err := service.NewFromConnectionString(cs, trust)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		log.Fatal(err)
	}

	// dev1 exists but no device client is connected.
	_, err = c.InvokeMethod(ctx, "dev1", service.MethodCall{Name: "reboot", Payload: map[string]int{"delay": 5}})
	switch {
	case service.IsDeviceNotOnline(err):
		fmt.Println("device is offline")
	case service.IsGatewayTimeout(err):
		fmt.Println("device did not answer in time")
	case err != nil:
		log.Fatal(err)
	}
	// Output: device is offline
}

func ExampleClient_Query() {
	cs, trust, stop := startExampleHub()
	defer stop()
	c, err := service.NewFromConnectionString(cs, trust)
	if err != nil {
		log.Fatal(err)
	}
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
	cs, trust, stop := startExampleHub()
	defer stop()
	c, err := service.NewFromConnectionString(cs, trust)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "dev1"}); err != nil {
		log.Fatal(err)
	}

	q := c.Query("SELECT * FROM devices", 100)
	for q.HasMore() {
		page, err := q.NextPage(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(page), "items of type", q.ItemType())
	}
	// Output: 1 items of type Twin
}
