// SPDX-License-Identifier: MIT

package huberr

// Errors of the Jobs v2 routes (/jobs/v2/...). Sources, per entry: the C#
// service SDK's ErrorCode enum, the troubleshooting guide's 429 list
// (learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes) and error
// bodies users posted from real hubs.

// JobNotFound is 404002: no job has the id (GET or cancel of an unknown or
// expired job). The C# v1 JobClient maps a 404 on GetJobAsync to its
// JobNotFoundException.
func JobNotFound(id string) *Error {
	return newErr(404, 404002, "JobNotFound", "Job %s was not found.", id)
}

// JobAlreadyExists answers a PUT /jobs/v2/{id} whose id is taken: a job is
// created once and never replaced. The status is 409; the code name and
// number are this emulator's (no SDK or document names the hub's).
func JobAlreadyExists(id string) *Error {
	return newErr(409, 409000, "JobAlreadyExists", "A job with id '%s' already exists; job ids cannot be reused.", id)
}

// MaxActiveJobsExceeded is 429004 ThrottlingMaxActiveJobCountExceeded: the
// hub already has as many queued, scheduled or running jobs as its tier
// allows (1 on Free and S1, 5 on S2, 10 on S3). Users report the hub's
// body as "ErrorCode:ThrottlingMaxActiveJobCountExceeded;..." with status
// 429 (azure-iot-sdk-csharp issue 361); the SDKs' e2e suites retry on 429.
func MaxActiveJobsExceeded(limit int) *Error {
	return newErr(429, 429004, "ThrottlingMaxActiveJobCountExceeded",
		"The hub already has %d active (queued, scheduled or running) jobs, the most it allows; wait for one to finish or cancel one.", limit)
}

// GenericBadRequest is the hub's answer to a request its model binding
// rejects, such as a job "type" that is not a job type: users report
// "ErrorCode:GenericBadRequest;BadRequest" for "scheduleDirectMethod"
// (MicrosoftDocs/azure-docs issue 29484). The code number is not on the
// wire (form A carries the name only).
func GenericBadRequest(format string, args ...any) *Error {
	return newErr(400, 400000, "GenericBadRequest", format, args...)
}
