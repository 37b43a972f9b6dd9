// SPDX-License-Identifier: MIT

// Command device is the device app of Microsoft's "Get started with device
// management" tutorial (dmpatterns_getstarted_device.py), written with this
// module's device package. It waits for the rebootDevice direct method,
// answers it, simulates a reboot and reports the reboot time in the twin's
// reported properties.
//
//	IOTHUB_DEVICE_CONNECTION_STRING='HostName=...;DeviceId=...;SharedAccessKey=...' \
//	IOTHUB_CA_FILE=./iothub-data/ca.pem \
//	go run ./examples/dmpatterns/device [--reboot-delay 20s]
//
// Against a real hub, set only the connection string: the public CAs are trusted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/iothubemulator/iothub/device"
)

const methodName = "rebootDevice"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		// The program's name, not "device:", which the client's errors already carry.
		fmt.Fprintln(os.Stderr, "dmpatterns-device:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("device", flag.ContinueOnError)
	rebootDelay := fs.Duration("reboot-delay", 20*time.Second, "how long the simulated reboot takes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn := getenv("IOTHUB_DEVICE_CONNECTION_STRING")
	if conn == "" {
		return errors.New("set IOTHUB_DEVICE_CONNECTION_STRING to the device's connection string")
	}
	var opts []device.Option
	if ca := getenv("IOTHUB_CA_FILE"); ca != "" {
		opts = append(opts, device.WithCAFile(ca))
	}
	client, err := device.NewFromConnectionString(conn, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Starting the IoT Hub Go sample...")
	if err := client.Connect(ctx); err != nil {
		return err
	}
	defer client.Close()
	fmt.Fprintln(out, "IoTHubDeviceClient waiting for commands, press Ctrl-C to exit")
	for {
		req, err := client.ReceiveMethodRequest(ctx, methodName)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		resp := device.NewMethodResponse(req, 200, map[string]string{"Response": "This is the response from the device"})
		if err := client.SendMethodResponse(ctx, resp); err != nil {
			return err
		}
		fmt.Fprintln(out, "Rebooting device")
		select {
		case <-time.After(*rebootDelay):
		case <-ctx.Done():
			return nil
		}
		fmt.Fprintln(out, "Device rebooted")
		rebootTime := time.Now().UTC().Format(time.RFC3339Nano)
		if _, err := client.UpdateReportedProperties(ctx, map[string]any{"rebootTime": rebootTime}); err != nil {
			return err
		}
		fmt.Fprintln(out, "Device twins updated with latest rebootTime:", rebootTime)
	}
}
