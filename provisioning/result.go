// SPDX-License-Identifier: MIT

package provisioning

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/internal/sas"
)

// Registration statuses.
const (
	StatusUnassigned = "unassigned"
	StatusAssigning  = "assigning"
	StatusAssigned   = "assigned"
	StatusFailed     = "failed"
	StatusDisabled   = "disabled"
)

// RegistrationResult is the outcome of Register (Python's
// RegistrationResult).
type RegistrationResult struct {
	OperationID       string            // the service's operation id
	Status            string            // "assigned", or "failed" / "disabled" with an error
	RegistrationState RegistrationState // what the service says about the device

	cred credential // how the device attested, to connect to the hub with it
}

// RegistrationState is the service's record of the registration.
type RegistrationState struct {
	RegistrationID      string
	DeviceID            string          // the device id on the assigned hub
	AssignedHub         string          // the hub's host name
	Substatus           string          // initialAssignment, deviceDataMigrated, deviceDataReset, ...
	CreatedDateTime     time.Time       // zero when absent
	LastUpdatedDateTime time.Time       // zero when absent
	ETag                string          //
	Payload             json.RawMessage // the custom allocation's payload, nil when none
	ErrorCode           int             // of a failed registration
	ErrorMessage        string          //
	EnrollmentGroupID   string          // the group that attested the device, "" for an individual enrollment
}

// wireOperation is the device API's operation answer.
type wireOperation struct {
	OperationID       string     `json:"operationId"`
	Status            string     `json:"status"`
	RegistrationState *wireState `json:"registrationState"`
}

type wireState struct {
	RegistrationID         string          `json:"registrationId"`
	DeviceID               string          `json:"deviceId"`
	AssignedHub            string          `json:"assignedHub"`
	Status                 string          `json:"status"`
	Substatus              string          `json:"substatus"`
	CreatedDateTimeUTC     string          `json:"createdDateTimeUtc"`
	LastUpdatedDateTimeUTC string          `json:"lastUpdatedDateTimeUtc"`
	ETag                   string          `json:"etag"`
	Payload                json.RawMessage `json:"payload"`
	ErrorCode              int             `json:"errorCode"`
	ErrorMessage           string          `json:"errorMessage"`
	SymmetricKey           *struct {
		EnrollmentGroupID string `json:"enrollmentGroupId"`
	} `json:"symmetricKey"`
	X509 *struct {
		EnrollmentGroupID string `json:"enrollmentGroupId"`
	} `json:"x509"`
}

func (w *wireState) state() RegistrationState {
	s := RegistrationState{
		RegistrationID: w.RegistrationID, DeviceID: w.DeviceID, AssignedHub: w.AssignedHub, Substatus: w.Substatus,
		ETag: w.ETag, ErrorCode: w.ErrorCode, ErrorMessage: w.ErrorMessage,
		CreatedDateTime: parseTime(w.CreatedDateTimeUTC), LastUpdatedDateTime: parseTime(w.LastUpdatedDateTimeUTC),
	}
	if p := strings.TrimSpace(string(w.Payload)); p != "" && p != "null" {
		s.Payload = w.Payload
	}
	switch {
	case w.SymmetricKey != nil:
		s.EnrollmentGroupID = w.SymmetricKey.EnrollmentGroupID
	case w.X509 != nil:
		s.EnrollmentGroupID = w.X509.EnrollmentGroupID
	}
	return s
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// ConnectionString returns the device connection string for the assigned
// hub: HostName={assignedHub};DeviceId={deviceId};SharedAccessKey={key}
// for a symmetric-key device, x509=true in place of the key for an X.509
// device (whose certificate device.WithX509Certificate must then give).
// The assigned hub's host name may carry a port (the emulator on random
// ports), which the device package accepts.
func (r *RegistrationResult) ConnectionString() (string, error) {
	if r.Status != StatusAssigned || r.RegistrationState.AssignedHub == "" || r.RegistrationState.DeviceID == "" {
		return "", errors.New("provisioning: the registration was not assigned to a hub")
	}
	cs := sas.ConnectionString{HostName: r.RegistrationState.AssignedHub, DeviceID: r.RegistrationState.DeviceID}
	if r.cred.cert != nil {
		cs.X509 = true
	} else {
		cs.SharedAccessKey = r.cred.key
	}
	return cs.String(), nil
}

// NewDeviceClient returns a device client for the assigned hub with the
// device's credentials: the symmetric key it attested with (the derived key
// for a group), or its X.509 certificate. The client has not connected yet.
func (r *RegistrationResult) NewDeviceClient(opts ...device.Option) (*device.Client, error) {
	cs, err := r.ConnectionString()
	if err != nil {
		return nil, err
	}
	if r.cred.cert != nil {
		opts = append([]device.Option{device.WithX509Certificate(*r.cred.cert)}, opts...)
	}
	return device.NewFromConnectionString(cs, opts...)
}

// credential is how a Client attests.
type credential struct {
	key  string           // symmetric key (base64)
	cert *tls.Certificate // X.509
}
