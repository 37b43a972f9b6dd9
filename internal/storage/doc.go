// SPDX-License-Identifier: MIT

// Package storage holds what the emulator and the Go clients need of Azure
// Blob Storage, and no more: storage connection strings, shared access
// signatures signed with an account key (service SAS for a blob or a
// container, account SAS for the blob service), and a small client for the
// handful of Blob REST operations that file upload and import/export jobs
// use (Put Blob, Put Block, Put Block List, Get Blob, Get Blob Properties,
// Create Container).
//
// It speaks the public Blob REST API over net/http rather than depending on
// the Azure SDK: six operations do not justify the SDK's dependency tree in
// an emulator that is meant to stay one small binary. Tests run it against
// Azurite, Microsoft's storage emulator, which checks every signature.
package storage
