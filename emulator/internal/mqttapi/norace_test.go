// SPDX-License-Identifier: MIT

//go:build !race

package mqttapi

const stackScale = 1
