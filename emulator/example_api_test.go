// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// exampleT stands in for the *testing.T a test passes to RunT.
type exampleT struct{ cleanups []func() }

func (t *exampleT) Helper()                           {}
func (t *exampleT) Logf(format string, args ...any)   {}
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) TempDir() string {
	dir, err := os.MkdirTemp("", "example-*")
	if err != nil {
		panic(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

// RunT starts an emulator for one test and stops it when the test ends.
func ExampleRunT() {
	t := &exampleT{} // in a test: the test's *testing.T
	defer t.done()

	srv := emulator.RunT(t)
	conn, err := srv.CreateDevice("thermostat-1")
	if err != nil {
		t.Fatalf("%v", err)
	}
	// The device connection string carries the MQTT port; trust
	// srv.CAPool() in the client.
	fmt.Println(conn != "", srv.IsConnected("thermostat-1", ""))
	// Output: true false
}

// Direct state access seeds and inspects the hub without the wire.
func ExampleServer_PutDevice() {
	t := &exampleT{}
	defer t.done()
	srv := emulator.RunT(t)

	// An X.509 device, known by its certificate's thumbprint.
	thumb := "0123456789ABCDEF0123456789ABCDEF01234567"
	_, err := srv.PutDevice(&emulator.Device{
		DeviceID: "camera-7",
		Auth:     emulator.Authentication{Type: emulator.AuthSelfSigned, PrimaryThumbprint: thumb},
	}, "")
	if err != nil {
		t.Fatalf("%v", err)
	}
	// A SAS device with keys of our choosing, then disabled.
	d, err := srv.PutDevice(&emulator.Device{
		DeviceID: "sensor-1",
		Auth:     emulator.Authentication{PrimaryKey: "c2Vuc29yLTEtcHJpbWFyeS1rZXk=", SecondaryKey: "c2Vuc29yLTEtc2Vjb25kYXJ5LWtleQ=="},
	}, "")
	if err != nil {
		t.Fatalf("%v", err)
	}
	d.Disabled = true
	if _, err := srv.PutDevice(d, d.ETag); err != nil {
		t.Fatalf("%v", err)
	}

	cam, _ := srv.Device("camera-7")
	sensor, _ := srv.Device("sensor-1")
	fmt.Println(cam.Auth.Type, cam.Auth.PrimaryThumbprint == thumb)
	fmt.Println(sensor.Auth.PrimaryKey, sensor.Disabled)
	// Output:
	// selfSigned true
	// c2Vuc29yLTEtcHJpbWFyeS1rZXk= true
}

// FailNext makes the hub answer the next calls of an operation with one of
// its own errors, to test how the code under test copes.
func ExampleServer_FailNext() {
	t := &exampleT{}
	defer t.done()
	srv := emulator.RunT(t)
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatalf("%v", err)
	}
	svc, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatalf("%v", err)
	}
	ctx := context.Background()

	srv.FailNext(emulator.OpGetTwin, 1, emulator.ErrThrottled)
	_, err = svc.GetTwin(ctx, "dev1")
	var se *service.Error
	fmt.Println(errors.As(err, &se), se.StatusCode, se.CodeName)
	_, err = svc.GetTwin(ctx, "dev1")
	fmt.Println(err)
	// Output:
	// true 429 ThrottlingException
	// <nil>
}

// The emulator's clock can stand still and jump: a C2D message's time to
// live runs out without waiting for it.
func ExampleServer_FastForward() {
	t := &exampleT{}
	defer t.done()
	srv := emulator.RunT(t)
	srv.SetTime(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatalf("%v", err)
	}
	m, err := srv.SendC2D("dev1", &emulator.C2DMessage{MessageID: "m1", Ack: emulator.AckFull}, time.Minute)
	if err != nil {
		t.Fatalf("%v", err)
	}
	fmt.Println("expires", m.ExpiryTime.Format(time.Kitchen))

	srv.FastForward(2 * time.Minute)
	pending, _ := srv.PendingC2D("dev1")
	fb, _ := srv.Feedback()
	fmt.Println(len(pending), "pending;", fb[0].OriginalMessageID, fb[0].StatusCode, "at", srv.Now().Format(time.Kitchen))
	// Output:
	// expires 12:01PM
	// 0 pending; m1 Expired at 12:02PM
}

// InjectFault breaks a device's connection the way the hub's own
// fault-injection hook does, without the device sending the fault
// message; the record says what happened.
func ExampleServer_InjectFault() {
	t := &exampleT{}
	defer t.done()
	srv := emulator.RunT(t)
	srv.SetTime(time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC))
	if _, err := srv.CreateDevice("dev1"); err != nil {
		t.Fatalf("%v", err)
	}
	f, err := srv.InjectFault(emulator.FaultSpec{DeviceID: "dev1", Type: emulator.FaultKillTcp, Delay: 2 * time.Second, Duration: time.Minute})
	if err != nil {
		t.Fatalf("%v", err)
	}
	fmt.Println(f.Type, f.Outcome)

	// No device is connected: the duration still refuses its reconnects.
	srv.FastForward(2 * time.Second)
	for srv.Faults("dev1")[0].Outcome == emulator.FaultPending {
		time.Sleep(time.Millisecond) // the fault is applied on its own goroutine
	}
	f = srv.Faults("dev1")[0]
	fmt.Println(f.Outcome, "until", f.EndTime.Format(time.TimeOnly))
	// Output:
	// KillTcp pending
	// notConnected until 12:01:02
}

// SetThrottle refuses an even share of operations with the hub's
// throttling error, for load tests.
func ExampleServer_SetThrottle() {
	t := &exampleT{}
	defer t.done()
	srv := emulator.RunT(t)
	svc, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := srv.SetThrottle(emulator.Throttle{Rate: 0.5, Ops: []emulator.Op{emulator.OpRegistry}}); err != nil {
		t.Fatalf("%v", err)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		_, err := svc.CreateDevice(context.Background(), &service.Device{DeviceID: id})
		var se *service.Error
		if errors.As(err, &se) {
			fmt.Println(id, se.StatusCode, se.CodeName)
		} else {
			fmt.Println(id, err)
		}
	}
	// Output:
	// a <nil>
	// b 429 ThrottlingException
	// c <nil>
	// d 429 ThrottlingException
}
