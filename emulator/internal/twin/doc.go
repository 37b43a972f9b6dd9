// SPDX-License-Identifier: MIT

// Package twin is the device-twin document engine: it holds one twin's tags,
// desired and reported properties with their $metadata trees, versions and
// etag, applies patches and replacements under IoT Hub's content rules and
// limits, and renders the JSON views the device and service protocols return.
//
// The package does no I/O and reads no clock: every write takes the time to
// stamp into $metadata. A Doc is not safe for concurrent use; the hub core
// serialises writes to a twin and persists it with [Doc.Marshal].
//
// Rules follow docs/iothub-protocol.md §3.8, §5 and §10. Where the hub's
// behaviour is unconfirmed the package picks the documented emulator choice:
// writes of an unchanged value still bump versions, deleting an absent key
// changes nothing, a desired replacement notifies the full new set plus null
// for removed top-level keys. Version and etag counters are stored explicitly;
// for writes to a single section they equal the formulas of §5.3 (version =
// desired $version + reported $version + tags writes, etag = desired $version
// + tags writes), and a combined tags+desired service write counts once.
//
// Service writes are PatchTags/ReplaceTags, PatchDesired/ReplaceDesired,
// or PatchTwin/ReplaceTwin for a whole REST body; device writes are
// PatchReported. A rejected write returns an *Error matching ErrInvalid or
// ErrTooLarge and leaves the Doc as it was.
//
// Quick start:
//
//	d := twin.New(now)
//	v, err := d.PatchReported([]byte(`{"fw":"1.0"}`), now)
package twin
