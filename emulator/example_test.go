// SPDX-License-Identifier: MIT

package emulator_test

import (
	"fmt"
	"strings"

	"github.com/iothubemulator/iothub/emulator"
)

// Example starts an in-memory emulator on random ports, as a program (or a
// TestMain) would; in a test, emulator.RunT(t) does all of this in one line.
func Example() {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	conn, err := srv.CreateDevice("thermostat-1")
	fmt.Println(err == nil, strings.HasPrefix(conn, "HostName=localhost:"), strings.Contains(conn, "DeviceId=thermostat-1"))
	// Output: true true true
}
