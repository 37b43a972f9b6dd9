// SPDX-License-Identifier: MIT

// Command service is the service app of Microsoft's "Get started with device
// management" tutorial (dmpatterns_getstarted_service.py), written with this
// module's service package. It invokes the rebootDevice direct method, then
// reads the device twin every few seconds until the device reports the
// reboot time.
//
//	IOTHUB_CONNECTION_STRING='HostName=...;SharedAccessKeyName=iothubowner;SharedAccessKey=...' \
//	DEVICE_ID=myDevice IOTHUB_CA_FILE=./iothub-data/ca.pem \
//	go run ./examples/dmpatterns/service [--polls N] [--interval 5s]
//
// Against a real hub, set only the connection string and device id.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/iothubemulator/iothub/service"
)

const (
	methodName = "rebootDevice"
	// The tutorial sends the payload as a JSON string holding JSON.
	methodPayload = `{"method_number":"42"}`
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		// The program's name, not "service:", which the client's errors already carry.
		fmt.Fprintln(os.Stderr, "dmpatterns-service:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("service", flag.ContinueOnError)
	polls := fs.Int("polls", 0, "stop after this many twin reads (0: until interrupted, as in the tutorial)")
	interval := fs.Duration("interval", 5*time.Second, "time between twin reads")
	connectTimeout := fs.Duration("connect-timeout", 0, "how long the hub waits for the device to come online (0: it must be online now, as in the tutorial)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn, deviceID := getenv("IOTHUB_CONNECTION_STRING"), getenv("DEVICE_ID")
	if conn == "" || deviceID == "" {
		return errors.New("set IOTHUB_CONNECTION_STRING (a service connection string) and DEVICE_ID")
	}
	var opts []service.Option
	if ca := getenv("IOTHUB_CA_FILE"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", ca)
		}
		opts = append(opts, service.WithRootCAs(pool))
	}
	client, err := service.NewFromConnectionString(conn, opts...)
	if err != nil {
		return err
	}
	res, err := client.InvokeMethod(ctx, deviceID, service.MethodCall{Name: methodName, Payload: methodPayload, ConnectTimeout: *connectTimeout})
	if errors.Is(err, service.ErrDeviceNotOnline) {
		return fmt.Errorf("%w\n%s is not connected: start the device app first, or wait for it with --connect-timeout", err, deviceID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Device Method called")
	fmt.Fprintf(out, "Device Method name       : %s\n", methodName)
	fmt.Fprintf(out, "Device Method payload    : %s\n", methodPayload)
	fmt.Fprintln(out)
	fmt.Fprintf(out, "Response status          : %d\n", res.Status)
	fmt.Fprintf(out, "Response payload         : %s\n", res.Payload)
	fmt.Fprintln(out)
	fmt.Fprintln(out, "IoTHubClient waiting for commands, press Ctrl-C to exit")
	for n := 0; *polls == 0 || n < *polls; n++ {
		if n > 0 {
			select {
			case <-time.After(*interval):
			case <-ctx.Done():
				return nil
			}
		}
		twin, err := client.GetTwin(ctx, deviceID)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var rebootTime string
		if raw, ok := twin.Properties.Reported.Get("rebootTime"); ok {
			_ = json.Unmarshal(raw, &rebootTime)
		}
		if rebootTime != "" {
			fmt.Fprintln(out, "Last reboot time: "+rebootTime)
		} else {
			fmt.Fprintln(out, "Waiting for device to report last reboot time...")
		}
	}
	return nil
}
