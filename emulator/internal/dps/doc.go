// SPDX-License-Identifier: MIT

// Package dps is the emulator's Device Provisioning Service: individual
// enrollments and enrollment groups, device attestation (symmetric keys,
// keys derived per registration id from a group key, X.509 certificates
// and CA chains), and assignment to the one hub there is, through the hub
// core's registry and twin operations. Enrollments and registration states
// live in the hub's bbolt store; nothing is acknowledged before it is
// durable.
//
// Like the hub, it knows no topic or route: mqttapi serves the device API
// over MQTT ($dps/registrations/...) and restapi serves it over HTTPS
// (/{idScope}/registrations/...) next to the service API (/enrollments,
// /enrollmentGroups, /registrations), and both render this package's Error.
//
// Differences from the real service: one ID scope and one linked hub, so
// every allocation policy assigns to this hub; TPM attestation and CA
// references are refused; the assignment is done before the register
// request is answered, so the first operation status query finds it
// assigned (or failed).
package dps
