// SPDX-License-Identifier: MIT

// Package sas implements Azure IoT Hub connection strings and shared access
// signature (SAS) tokens. The emulator, the Go device client and the Go
// service client all use it, so a token minted by one verifies in the other
// and in the official SDKs.
//
// Fidelity notes:
//   - NewToken encodes sr, sig and skn the way the Node SDK does
//     (encodeURIComponent plus escaping of !'()*), so it reproduces Node tokens
//     byte for byte.
//   - Token.Verify signs sr exactly as it appears on the wire, as the hub does,
//     so tokens from signers with other escaping (Python's quote, C#'s
//     WebUtility.UrlEncode with lower-case escapes) verify too.
//   - Connection-string names are matched case-insensitively (the C# SDK's
//     rule); the Node SDK is case-sensitive, so canonical spellings always work.
//
// Quick start:
//
//	tok, err := sas.NewToken(sas.ResourceURI(host, "dev1", ""), "", key, time.Now().Add(time.Hour))
//	t, err := sas.ParseToken(tok); ok := t.Verify(key) && t.Covers(sas.ResourceURI(host, "dev1", ""))
package sas
