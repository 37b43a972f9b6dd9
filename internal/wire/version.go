// SPDX-License-Identifier: MIT

package wire

import "runtime"

// APIVersion is the api-version both clients send: in every REST query and
// in the MQTT username. It is the one the official SDKs send (azure-iothub
// dist/version.js, azure-iot-device-mqtt).
const APIVersion = "2021-04-12"

// Version is this module's client version, part of the user agents.
const Version = "0.1.0"

// UserAgent returns "<product>/<Version> (<go version>; <os>; <arch>)", the
// shape of the Node SDKs' user agents ("azure-iot-device/1.18.3 (node
// v18; Linux; x64)"), which the hub records per connection and request.
func UserAgent(product string) string {
	return product + "/" + Version + " (" + runtime.Version() + "; " + runtime.GOOS + "; " + runtime.GOARCH + ")"
}
