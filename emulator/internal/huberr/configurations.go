// SPDX-License-Identifier: MIT

package huberr

// Errors of the configuration routes (/configurations). The hub has no
// configuration-specific codes that an SDK or document names: the C# e2e
// suite, run against real hubs, expects a configuration that is already
// gone to come back with the status code DeviceNotFound
// (ConfigurationsClientE2ETests, "configuration was already deleted"), and
// industrial-iot's deployment code catches DeviceAlreadyExistsException when
// it creates a configuration whose id is taken. The registry codes are
// reused with a message about the configuration.

// ConfigurationNotFound is 404001 for a configuration id that does not exist.
func ConfigurationNotFound(id string) *Error {
	return newErr(404, 404001, "DeviceNotFound", "Configuration '%s' does not exist.", id)
}

// ConfigurationAlreadyExists is 409001 for a create (no If-Match) of a
// configuration id that is taken.
func ConfigurationAlreadyExists(id string) *Error {
	return newErr(409, 409001, "DeviceAlreadyExists", "A configuration with ID '%s' already exists.", id)
}

// ConfigurationQuotaExceeded is 403002 IotHubQuotaExceeded: the hub already
// holds its maximum number of configurations (100 on a standard hub).
func ConfigurationQuotaExceeded(max int) *Error {
	return newErr(403, 403002, "IotHubQuotaExceeded", "The hub already has %d configurations, the maximum; delete one first.", max)
}
