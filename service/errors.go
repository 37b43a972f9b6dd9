// SPDX-License-Identifier: MIT

package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is an error response from the hub. Use errors.As to get at it, or
// the Is... helpers (IsNotFound, IsThrottled, ...) to classify it.
type Error struct {
	Op         string          // client operation, e.g. "GetDevice"
	StatusCode int             // HTTP status code
	Code       int             // six-digit hub error code, e.g. 404001; 0 when the hub sent none we could read
	CodeName   string          // hub error code name, e.g. "DeviceNotFound"; "" when unknown
	Message    string          // human-readable message from the hub
	TrackingID string          // hub tracking id, when the body carried one
	RequestID  string          // Request-Id header this client sent on the failing attempt
	Info       json.RawMessage // "info" object of error form B, nil otherwise
	Body       []byte          // raw response body (at most maxErrorBody bytes)
}

// Error formats e as "service: Op: status CodeName (Code): Message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("service: ")
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.CodeName != "" {
		b.WriteString(" " + e.CodeName)
	}
	if e.Code != 0 {
		b.WriteString(" (" + strconv.Itoa(e.Code) + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Hub error codes (learn.microsoft.com/rest/api/iothub/common-error-codes and
// the C# SDK's IotHubServiceErrorCode.cs). Error.Code holds one of these, or
// another six-digit code the hub sent.
const (
	CodeInvalidProtocolVersion      = 400001
	CodeInvalidOperation            = 400003
	CodeArgumentInvalid             = 400004
	CodeArgumentNull                = 400005
	CodeIotHubFormatError           = 400006
	CodeDeviceDefinedMultipleTimes  = 400011
	CodeBulkRegistryOperationFailed = 400013
	CodeIotHubUnauthorizedAccess    = 401002
	CodeIotHubUnauthorized          = 401003
	CodeJobQuotaExceeded            = 403001
	CodeIotHubQuotaExceeded         = 403002
	CodeDeviceMaximumQueueDepth     = 403004
	CodeDeviceNotFound              = 404001
	CodeJobNotFound                 = 404002
	CodeModuleNotFound              = 404010
	CodeDeviceNotOnline             = 404103
	CodeDeviceAlreadyExists         = 409001
	CodeModuleAlreadyExists         = 409301
	CodePreconditionFailed          = 412001
	CodeDeviceMessageLockLost       = 412002
	CodeMessageTooLarge             = 413001
	CodeTooManyDevices              = 413002
	CodeThrottlingException         = 429001
	CodeThrottleBacklogLimit        = 429002
	CodeThrottlingBacklogTimeout    = 429003
	CodeServerError                 = 500001
	CodeServiceUnavailable          = 503001
	CodeGatewayTimeout              = 504101
)

// codeNames maps codes to the names the hub uses in form A bodies and in
// the iothub-errorcode header.
var codeNames = map[int]string{
	CodeInvalidProtocolVersion:      "InvalidProtocolVersion",
	CodeInvalidOperation:            "InvalidOperation",
	CodeArgumentInvalid:             "ArgumentInvalid",
	CodeArgumentNull:                "ArgumentNull",
	CodeIotHubFormatError:           "IotHubFormatError",
	CodeDeviceDefinedMultipleTimes:  "DeviceDefinedMultipleTimes",
	CodeBulkRegistryOperationFailed: "BulkRegistryOperationFailure",
	CodeIotHubUnauthorizedAccess:    "IotHubUnauthorizedAccess",
	CodeIotHubUnauthorized:          "IotHubUnauthorized",
	CodeJobQuotaExceeded:            "JobQuotaExceeded",
	CodeIotHubQuotaExceeded:         "IotHubQuotaExceeded",
	CodeDeviceMaximumQueueDepth:     "DeviceMaximumQueueDepthExceeded",
	CodeDeviceNotFound:              "DeviceNotFound",
	CodeJobNotFound:                 "JobNotFound",
	CodeModuleNotFound:              "ModuleNotFound",
	CodeDeviceNotOnline:             "DeviceNotOnline",
	CodeDeviceAlreadyExists:         "DeviceAlreadyExists",
	CodeModuleAlreadyExists:         "ModuleAlreadyExistsOnDevice",
	CodePreconditionFailed:          "PreconditionFailed",
	CodeDeviceMessageLockLost:       "DeviceMessageLockLost",
	CodeMessageTooLarge:             "MessageTooLarge",
	CodeTooManyDevices:              "TooManyDevices",
	CodeThrottlingException:         "ThrottlingException",
	CodeThrottleBacklogLimit:        "ThrottleBacklogLimitExceeded",
	CodeThrottlingBacklogTimeout:    "ThrottlingBacklogTimeout",
	CodeServerError:                 "ServerError",
	CodeServiceUnavailable:          "ServiceUnavailable",
	CodeGatewayTimeout:              "GatewayTimeout",
}

var namesToCodes = func() map[string]int {
	m := make(map[string]int, len(codeNames))
	for code, name := range codeNames {
		m[strings.ToLower(name)] = code
	}
	return m
}()

// errorCodeHeader carries the error code name on hub error responses (C# SDK
// CustomHeaderConstants.HttpErrorCodeName).
const errorCodeHeader = "iothub-errorcode"

// maxErrorBody bounds how much of an error body is kept in Error.Body.
const maxErrorBody = 64 << 10

// parseError builds an Error from a failed response. It understands the two
// body forms the hub uses:
//
//	A: {"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:...-G:4-TimeStamp:..."}
//	B: {"Message":"{\"errorCode\":404103,\"trackingId\":\"...\",\"message\":\"...\",\"info\":{...},\"timestampUtc\":\"...\"}","ExceptionMessage":""}
//
// plus form B's inner object sent at top level, and non-JSON bodies (from
// proxies). The iothub-errorcode header fills in a code the body lacks.
func parseError(status int, header http.Header, body []byte) *Error {
	e := &Error{StatusCode: status}
	if len(body) > maxErrorBody {
		body = body[:maxErrorBody]
	}
	e.Body = bytes.Clone(body)

	if !parseJSONError(e, body) {
		e.Message = plainMessage(body)
	}
	if h := strings.TrimSpace(header.Get(errorCodeHeader)); h != "" {
		if n, err := strconv.Atoi(h); err == nil {
			if e.Code == 0 {
				e.Code = n
			}
		} else if e.CodeName == "" {
			e.CodeName = h
		}
	}
	if e.Code == 0 && e.CodeName != "" {
		e.Code = namesToCodes[strings.ToLower(e.CodeName)]
	}
	if e.CodeName == "" && e.Code != 0 {
		e.CodeName = codeNames[e.Code]
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// formB is the structured error object of error form B.
type formB struct {
	ErrorCode    json.RawMessage `json:"errorCode"`
	TrackingID   string          `json:"trackingId"`
	Message      string          `json:"message"`
	Info         json.RawMessage `json:"info"`
	TimestampUTC string          `json:"timestampUtc"`
}

// parseJSONError fills e from a JSON error body and reports whether the body
// was a JSON object.
func parseJSONError(e *Error, body []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return false
	}
	if _, ok := top["errorCode"]; ok {
		var b formB
		if json.Unmarshal(body, &b) == nil {
			applyFormB(e, &b)
			return true
		}
	}
	msg := jsonString(lookupFold(top, "Message"))
	exc := jsonString(lookupFold(top, "ExceptionMessage"))
	if t := strings.TrimSpace(msg); strings.HasPrefix(t, "{") {
		var b formB
		if json.Unmarshal([]byte(t), &b) == nil && b.ErrorCode != nil {
			applyFormB(e, &b)
			return true
		}
	}
	// Form A: "ErrorCode:<Name>;<message>". Node's parseErrorBody takes the
	// text after "ErrorCode:" as the code; the message may itself contain ';'.
	if rest, ok := strings.CutPrefix(msg, "ErrorCode:"); ok {
		name, text, _ := strings.Cut(rest, ";")
		name = strings.TrimSpace(name)
		if n, err := strconv.Atoi(name); err == nil {
			e.Code = n
		} else {
			e.CodeName = name
		}
		msg = text
	}
	e.Message = strings.TrimSpace(msg)
	if _, after, ok := strings.Cut(exc, "Tracking ID:"); ok {
		e.TrackingID = strings.TrimSpace(after)
	} else if e.Message == "" {
		e.Message = strings.TrimSpace(exc)
	}
	return true
}

func applyFormB(e *Error, b *formB) {
	e.Code = intCode(b.ErrorCode)
	e.TrackingID = b.TrackingID
	e.Message = strings.TrimSpace(b.Message)
	if len(b.Info) > 0 && !bytes.Equal(b.Info, []byte("null")) {
		e.Info = b.Info
	}
}

// intCode reads errorCode, which is a number on the wire but a string in
// some relays.
func intCode(raw json.RawMessage) int {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, _ = strconv.Atoi(s)
	}
	return n
}

// lookupFold finds key in m, case-insensitively as encoding/json would.
func lookupFold(m map[string]json.RawMessage, key string) json.RawMessage {
	if v, ok := m[key]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func jsonString(raw json.RawMessage) string {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// plainMessage turns a non-JSON body into a short one-line message.
func plainMessage(body []byte) string {
	const maxLen = 512
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > maxLen {
		s = s[:maxLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	return s
}

// asError returns the *Error in err's chain, or nil.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

func hasStatus(err error, status int) bool {
	e := asError(err)
	return e != nil && e.StatusCode == status
}

// IsNotFound reports whether err is a hub 404, such as DeviceNotFound or
// ModuleNotFound. A 404103 DeviceNotOnline (the device exists but is not
// connected) does not count; see IsDeviceNotOnline.
func IsNotFound(err error) bool {
	e := asError(err)
	return e != nil && e.StatusCode == http.StatusNotFound && e.Code != CodeDeviceNotOnline
}

// IsAlreadyExists reports whether err is a hub 409, such as
// DeviceAlreadyExists or ModuleAlreadyExistsOnDevice.
func IsAlreadyExists(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsPreconditionFailed reports whether err is a hub 412: the If-Match etag
// did not match the current one.
func IsPreconditionFailed(err error) bool { return hasStatus(err, http.StatusPreconditionFailed) }

// IsThrottled reports whether err is a hub 429 throttling error.
func IsThrottled(err error) bool { return hasStatus(err, http.StatusTooManyRequests) }

// IsUnauthorized reports whether err is a hub 401: a missing, invalid or
// expired token, or a policy without the needed permission.
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsForbidden reports whether err is a hub 403, such as a quota being
// exceeded.
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

// IsBadRequest reports whether err is a hub 400: the request was invalid.
func IsBadRequest(err error) bool { return hasStatus(err, http.StatusBadRequest) }

// IsDeviceNotOnline reports whether err is the hub's 404103: the target of a
// direct method was not connected (or not subscribed to methods) within
// the connect timeout.
func IsDeviceNotOnline(err error) bool {
	e := asError(err)
	return e != nil && e.Code == CodeDeviceNotOnline
}

// IsGatewayTimeout reports whether err is a hub 504, typically 504101: the
// device did not answer a direct method within the response timeout.
func IsGatewayTimeout(err error) bool {
	e := asError(err)
	return e != nil && (e.Code == CodeGatewayTimeout || e.StatusCode == http.StatusGatewayTimeout)
}

// errorf prefixes client-side errors consistently.
func errorf(op, format string, args ...any) error {
	return fmt.Errorf("service: "+op+": "+format, args...)
}
