// SPDX-License-Identifier: MIT

package wire

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Hub error codes (learn.microsoft.com/rest/api/iothub/common-error-codes and
// the C# SDK's IotHubServiceErrorCode.cs). The first three digits are the
// HTTP status the hub answers with.
const (
	CodeInvalidProtocolVersion      = 400001
	CodeInvalidOperation            = 400003
	CodeArgumentInvalid             = 400004
	CodeArgumentNull                = 400005
	CodeIotHubFormatError           = 400006
	CodeDeviceDefinedMultipleTimes  = 400011
	CodeBulkRegistryOperationFailed = 400013
	CodeBlobContainerValidation     = 400008
	CodeInvalidFileUploadCorrID     = 400015
	CodeExpiredFileUploadCorrID     = 400016
	CodeInvalidStorageEndpointBlob  = 400020
	CodeInvalidStorageEndpointProp  = 400022
	CodeActiveFileUploadLimit       = 403006
	CodeIotHubUnauthorizedAccess    = 401002
	CodeIotHubUnauthorized          = 401003
	CodeJobQuotaExceeded            = 403003 // troubleshoot-error-codes; 403001 is IotHubSuspended
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
	CodeMaxActiveJobCountExceeded   = 429004
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
	CodeBlobContainerValidation:     "BlobContainerValidationError",
	CodeInvalidFileUploadCorrID:     "InvalidFileUploadCorrelationId",
	CodeExpiredFileUploadCorrID:     "ExpiredFileUploadCorrelationId",
	CodeInvalidStorageEndpointBlob:  "InvalidStorageEndpointOrBlob",
	CodeInvalidStorageEndpointProp:  "InvalidStorageEndpointProperty",
	CodeActiveFileUploadLimit:       "DeviceMaximumActiveFileUploadLimitExceeded",
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
	CodeMaxActiveJobCountExceeded:   "ThrottlingMaxActiveJobCountExceeded",
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

// CodeName returns the hub's name for code, or "" for a code not listed.
func CodeName(code int) string { return codeNames[code] }

// CodeOf returns the code the hub names name (compared without case), or 0.
func CodeOf(name string) int { return namesToCodes[strings.ToLower(name)] }

// ErrorCodeHeader carries the error code's name on the hub's REST error
// responses (C# SDK CustomHeaderConstants.HttpErrorCodeName).
const ErrorCodeHeader = "iothub-errorcode"

// MaxErrorBody bounds how much of an error body HubError.Body keeps.
const MaxErrorBody = 64 << 10

// HubError is what the hub said about a failed request. Both clients copy
// it into their exported Error type.
type HubError struct {
	StatusCode int             // HTTP status, or the status of an MQTT twin reply
	Code       int             // six-digit error code; 0 when the answer carried none we could read
	CodeName   string          // the code's name, e.g. "DeviceNotFound"; "" when unknown
	Message    string          // the hub's message, or the status text when it sent none
	TrackingID string          // the hub's tracking id, when the answer carried one
	Info       json.RawMessage // "info" object of a form B body, nil otherwise
	Body       []byte          // the raw body, at most MaxErrorBody bytes
}

// ParseError reads a failed answer: an HTTP error response (header may be
// nil for MQTT) or a twin reply with a non-2xx status. It understands the
// two body forms the hub uses on REST,
//
//	A: {"Message":"ErrorCode:DeviceNotFound;Device dev9 is not registered","ExceptionMessage":"Tracking ID:...-G:4-TimeStamp:..."}
//	B: {"Message":"{\"errorCode\":404103,\"trackingId\":\"...\",\"message\":\"...\",\"info\":{...},\"timestampUtc\":\"...\"}","ExceptionMessage":""}
//
// form B's inner object at top level, which is what twin replies carry over
// MQTT (C# v2 device SDK IotHubClientErrorResponseMessage.cs), and bodies
// that are not JSON (from proxies, or edgeHub's empty ones). The
// iothub-errorcode header fills in a code the body lacks; the body wins
// when both name one.
func ParseError(status int, header http.Header, body []byte) HubError {
	e := HubError{StatusCode: status}
	if len(body) > MaxErrorBody {
		body = body[:MaxErrorBody]
	}
	e.Body = bytes.Clone(body)

	if !parseJSONError(&e, body) {
		e.Message = plainMessage(body)
	}
	if h := strings.TrimSpace(header.Get(ErrorCodeHeader)); h != "" {
		if n, err := strconv.Atoi(h); err == nil {
			if e.Code == 0 {
				e.Code = n
			}
		} else if e.CodeName == "" {
			e.CodeName = h
		}
	}
	if e.Code == 0 && e.CodeName != "" {
		e.Code = CodeOf(e.CodeName)
	}
	if e.CodeName == "" && e.Code != 0 {
		e.CodeName = CodeName(e.Code)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// formB is the structured error object of form B and of MQTT twin replies.
type formB struct {
	ErrorCode    json.RawMessage `json:"errorCode"`
	TrackingID   string          `json:"trackingId"`
	Message      string          `json:"message"`
	Info         json.RawMessage `json:"info"`
	TimestampUTC string          `json:"timestampUtc"`
}

// parseJSONError fills e from a JSON error body and reports whether the
// body was a JSON object.
func parseJSONError(e *HubError, body []byte) bool {
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

func applyFormB(e *HubError, b *formB) {
	e.Code = intCode(b.ErrorCode)
	e.TrackingID = b.TrackingID
	e.Message = strings.TrimSpace(b.Message)
	if len(b.Info) > 0 && !bytes.Equal(b.Info, []byte("null")) {
		e.Info = b.Info
	}
}

// intCode reads errorCode, which is a number on the wire but a string in
// some gateways and relays.
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

// CodeText returns an errorCode member as text: a number, or a string of
// digits, as its digits; another string (a code name) as it is. Bulk
// registry results carry either form.
func CodeText(raw json.RawMessage) string {
	if n := intCode(raw); n != 0 {
		return strconv.Itoa(n)
	}
	return jsonString(raw)
}

// lookupFold finds key in m, without case as encoding/json matches fields.
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

// plainMessage turns a body that is not JSON into a short one-line message.
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

// FormatError renders a hub error the same way for both clients:
// "<pkg>: <op>: <status> <CodeName> (<Code>): <Message>", leaving out what
// is empty.
func FormatError(pkg, op string, status, code int, codeName, message string) string {
	var b strings.Builder
	b.WriteString(pkg + ": ")
	if op != "" {
		b.WriteString(op + ": ")
	}
	b.WriteString(strconv.Itoa(status))
	if codeName != "" {
		b.WriteString(" " + codeName)
	}
	if code != 0 {
		b.WriteString(" (" + strconv.Itoa(code) + ")")
	}
	if message != "" {
		b.WriteString(": " + message)
	}
	return b.String()
}
