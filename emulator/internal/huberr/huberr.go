// SPDX-License-Identifier: MIT

// Package huberr is the one catalogue of IoT Hub errors. Every adapter (REST,
// MQTT) and every test builds its errors here, so that a status code, a
// six-digit error code, a message and the body form that the official SDKs
// parse are defined once. The catalogue holds data only: each adapter renders
// it for its protocol (restapi: bodies and the iothub-errorcode header;
// mqttapi: twin response status and body).
package huberr

import (
	"errors"
	"fmt"
	"time"
)

// Form says which of the hub's two REST error body forms an error takes;
// restapi renders them.
type Form int

const (
	// FormA is {"Message":"ErrorCode:<Name>;<message>","ExceptionMessage":"..."},
	// the form used by the registry, twin and query routes. Node's parser
	// (azure-iot-http-base Http.parseErrorBody) understands only this one.
	FormA Form = iota
	// FormB carries an escaped JSON object with the numeric errorCode inside
	// Message. The hub uses it for direct-method errors.
	FormB
)

// Error is an IoT Hub error: HTTP status, numeric code, code name and a
// human-readable message.
type Error struct {
	Status  int            // HTTP status (also used as the MQTT twin/res status)
	Code    int            // six-digit IoT Hub error code, e.g. 404001
	Name    string         // code name, e.g. DeviceNotFound
	Message string         // what went wrong, for people
	Form    Form           // body form on REST
	Info    map[string]any // optional "info" member of form B bodies
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.Name, e.Code, e.Message)
}

// Is matches errors with the same code, so errors.Is(err, huberr.DeviceNotFound("")) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// As returns err as an *Error. Errors from outside the catalogue become 500
// ServerError with a generic message: internal details are logged, not leaked.
func As(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	return ServerError("An internal error occurred.")
}

func newErr(status, code int, name, format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{Status: status, Code: code, Name: name, Message: msg}
}

// The catalogue. Codes and names: iothub-protocol.md §6.1 and the C# SDK's
// IotHubServiceErrorCode.

// InvalidProtocolVersion is 400001: the request has no valid api-version.
func InvalidProtocolVersion() *Error {
	return newErr(400, 400001, "InvalidProtocolVersion", "BadRequest")
}

// InvalidOperation is 400003: the operation is not allowed in this state.
func InvalidOperation(format string, args ...any) *Error {
	return newErr(400, 400003, "InvalidOperation", format, args...)
}

// ArgumentInvalid is 400004: the request is malformed or a value breaks a rule.
func ArgumentInvalid(format string, args ...any) *Error {
	return newErr(400, 400004, "ArgumentInvalid", format, args...)
}

// ArgumentNull is 400005: a required value is missing.
func ArgumentNull(format string, args ...any) *Error {
	return newErr(400, 400005, "ArgumentNull", format, args...)
}

// DeviceDefinedMultipleTimes is 400011: a bulk request names an identity twice.
func DeviceDefinedMultipleTimes(id string) *Error {
	return newErr(400, 400011, "DeviceDefinedMultipleTimes", "Device %s is defined more than once in the request.", id)
}

// BlobContainerValidationError is 400008: an import/export job's blob
// container cannot be written (or read) with the URI it was given. Verified
// on a live hub for a bad SAS at job creation.
func BlobContainerValidationError(format string, args ...any) *Error {
	return newErr(400, 400008, "BlobContainerValidationError", format, args...)
}

// InvalidFileUploadCorrelationID is 400015: a file-upload notification
// names a correlation id the hub did not hand this device.
func InvalidFileUploadCorrelationID(format string, args ...any) *Error {
	return fileErr(400, 400015, "InvalidFileUploadCorrelationId", format, args...)
}

// ExpiredFileUploadCorrelationID is 400016: the upload's SAS time to live
// has passed.
func ExpiredFileUploadCorrelationID(format string, args ...any) *Error {
	return fileErr(400, 400016, "ExpiredFileUploadCorrelationId", format, args...)
}

// InvalidStorageEndpointOrBlob is 400020: storage answered Forbidden,
// Unauthorized, NotFound or BadRequest (or did not answer) when the hub
// read the uploaded blob.
func InvalidStorageEndpointOrBlob(format string, args ...any) *Error {
	return fileErr(400, 400020, "InvalidStorageEndpointOrBlob", format, args...)
}

// InvalidStorageEndpointProperty is 400022: what a hub answers a file
// upload request when its storage endpoint is not usable, e.g. not
// configured (seen from real hubs in azure-iot-sdk-csharp#2936 and
// azure-iot-samples-csharp#129, in form B).
func InvalidStorageEndpointProperty(format string, args ...any) *Error {
	return fileErr(400, 400022, "InvalidStorageEndpointProperty", format, args...)
}

// fileErr builds a file-upload error: the hub answers the device's file
// routes with form B bodies.
func fileErr(status, code int, name, format string, args ...any) *Error {
	e := newErr(status, code, name, format, args...)
	e.Form = FormB
	return e
}

// UnauthorizedAccess is 401002: the credentials do not grant the request.
func UnauthorizedAccess(format string, args ...any) *Error {
	return newErr(401, 401002, "IotHubUnauthorizedAccess", format, args...)
}

// Unauthorized is 401003: the token is invalid, expired or out of scope.
func Unauthorized(format string, args ...any) *Error {
	return newErr(401, 401003, "IotHubUnauthorized", format, args...)
}

// DeviceMaximumQueueDepthExceeded is 403004: the device's cloud-to-device queue is full.
func DeviceMaximumQueueDepthExceeded(id string, max int) *Error {
	return newErr(403, 403004, "DeviceMaximumQueueDepthExceeded", "Device %s already has %d messages pending; the maximum queue depth is %d.", id, max, max)
}

// JobQuotaExceeded is 403003: another import/export job is running (one
// at a time on every tier).
func JobQuotaExceeded(format string, args ...any) *Error {
	return newErr(403, 403003, "JobQuotaExceeded", format, args...)
}

// DeviceMaximumActiveFileUploadLimitExceeded is 403006: the device has ten
// uploads neither notified nor expired.
func DeviceMaximumActiveFileUploadLimitExceeded(max int) *Error {
	return fileErr(403, 403006, "DeviceMaximumActiveFileUploadLimitExceeded",
		"Number of active file upload requests cannot exceed %d", max)
}

// ReportedTooLarge is 403100: a device's reported properties exceed 32 KB.
func ReportedTooLarge(format string, args ...any) *Error {
	return newErr(403, 403100, "ReportedPropertiesTooLarge", format, args...)
}

// DeviceNotFound is 404001.
func DeviceNotFound(id string) *Error {
	return newErr(404, 404001, "DeviceNotFound", "Device %s is not registered.", id)
}

// ModuleNotFound is 404010.
func ModuleNotFound(id, mid string) *Error {
	return newErr(404, 404010, "ModuleNotFound", "Module %s on device %s is not registered.", mid, id)
}

// DeviceNotOnline is the direct-method error for a device that is not
// connected, or not subscribed to methods, within connectTimeout.
func DeviceNotOnline(connectTimeout time.Duration) *Error {
	e := newErr(404, 404103, "DeviceNotOnline", "Timed out waiting for device to connect.")
	e.Form = FormB
	e.Info = map[string]any{"timeout": TimeSpan(connectTimeout)}
	return e
}

// DeviceAlreadyExists is 409001.
func DeviceAlreadyExists(id string) *Error {
	return newErr(409, 409001, "DeviceAlreadyExists", "A device with ID '%s' is already registered.", id)
}

// ModuleAlreadyExists is 409301.
func ModuleAlreadyExists(id, mid string) *Error {
	return newErr(409, 409301, "ModuleAlreadyExistsOnDevice", "A module with ID '%s' is already registered on device '%s'.", mid, id)
}

// PreconditionFailed is 412001: an etag or version does not match.
func PreconditionFailed(format string, args ...any) *Error {
	return newErr(412, 412001, "PreconditionFailed", format, args...)
}

// DeviceMessageLockLost is 412002: a cloud-to-device lock token is unknown or expired.
func DeviceMessageLockLost(format string, args ...any) *Error {
	return newErr(412, 412002, "DeviceMessageLockLost", format, args...)
}

// MessageTooLarge is 413001.
func MessageTooLarge(format string, args ...any) *Error {
	return newErr(413, 413001, "MessageTooLarge", format, args...)
}

// TooManyDevices is 413002: a bulk request holds more than 100 identities.
func TooManyDevices(format string, args ...any) *Error {
	return newErr(413, 413002, "TooManyDevices", format, args...)
}

// Throttled is 429001 ThrottlingException.
func Throttled() *Error {
	return newErr(429, 429001, "ThrottlingException", "The request was throttled; retry later.")
}

// IotHubQuotaExceeded is 403002: the hub's daily message quota is used up.
func IotHubQuotaExceeded() *Error {
	return newErr(403, 403002, "IotHubQuotaExceeded", "Total number of messages on IotHub exceeded the allocated quota.")
}

// ServiceUnavailable is 503001: the hub cannot serve the request now.
func ServiceUnavailable(format string, args ...any) *Error {
	return newErr(503, 503001, "ServiceUnavailable", format, args...)
}

// ServerError is 500001.
func ServerError(format string, args ...any) *Error {
	return newErr(500, 500001, "ServerError", format, args...)
}

// GatewayTimeout is the direct-method error for a device that did not answer
// within responseTimeout.
func GatewayTimeout(responseTimeout time.Duration) *Error {
	e := newErr(504, 504101, "GatewayTimeout", "Timed out waiting for the response from device.")
	e.Form = FormB
	e.Info = map[string]any{"timeout": TimeSpan(responseTimeout)}
	return e
}

// TimeSpan formats d as a .NET TimeSpan (hh:mm:ss), as the hub writes timeouts
// in error "info" members.
func TimeSpan(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// Detail is the error object the hub writes inside a form B REST body and as
// the body of an MQTT twin error response:
// {"errorCode":...,"trackingId":...,"message":...,"info":{...},"timestampUtc":...}.
// The adapters render it; the catalogue only says what it holds.
type Detail struct {
	ErrorCode    int            `json:"errorCode"`
	TrackingID   string         `json:"trackingId"`
	Message      string         `json:"message"`
	Info         map[string]any `json:"info,omitempty"`
	TimestampUTC string         `json:"timestampUtc"`
}

// Detail returns e's detail object for one answer, stamped with the
// tracking id and the hub's time. Form B errors always carry "info".
func (e *Error) Detail(trackingID string, now time.Time) Detail {
	d := Detail{ErrorCode: e.Code, TrackingID: trackingID, Message: e.Message, Info: e.Info,
		TimestampUTC: now.UTC().Format("2006-01-02T15:04:05.0000000Z")}
	if e.Form == FormB && d.Info == nil {
		d.Info = map[string]any{}
	}
	return d
}
