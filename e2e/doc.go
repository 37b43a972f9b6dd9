// SPDX-License-Identifier: MIT

// Package e2e holds the black-box end-to-end tests: they build the
// iothub-emulator binary, run it as a separate process and drive it only
// through its public surfaces (command line, stdout, signals, the data
// directory, TLS sockets) with our Go service client and with the official
// Azure IoT Node.js SDKs from npm (e2e/node).
//
// Run everything from the module root:
//
//	(cd e2e/node && npm ci)   # once, or after package-lock.json changes
//	go test ./e2e
//
// TestNodeSDK needs 127.0.0.1:443 and 127.0.0.1:8883 free and the right to
// bind them (root or CAP_NET_BIND_SERVICE), because the Node SDKs take no
// port; every other test uses random loopback ports. BenchmarkStartup
// measures process start to /health 200:
//
//	go test ./e2e -run '^$' -bench Startup
//
// IOTHUB_E2E_BINARY tests a prebuilt binary instead of building one, and
// IOTHUB_E2E_LOG_LEVEL sets the emulator's --log-level (default info); its
// output is printed when a test fails.
package e2e
