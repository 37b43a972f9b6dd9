// SPDX-License-Identifier: MIT

package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/iothubemulator/iothub/emulator/internal/dps"
)

// Direct access to the Device Provisioning Service for tests. Enrollments
// and registration states are given and returned in the service API's JSON
// (api-version 2021-10-01), so a test can copy them from the DPS
// documentation or hand them to an official SDK.

// PutEnrollment creates or replaces an individual enrollment given as the
// service API's JSON, keyed by its registrationId, and returns it as stored
// (symmetric keys left empty are generated).
func (s *Server) PutEnrollment(enrollment []byte) (json.RawMessage, error) {
	var e struct {
		RegistrationID string `json:"registrationId"`
	}
	if err := json.Unmarshal(enrollment, &e); err != nil || e.RegistrationID == "" {
		return nil, errors.New("emulator: the enrollment must be a JSON object with a registrationId")
	}
	out, err := s.dps.PutEnrollment(context.Background(), e.RegistrationID, enrollment, "")
	if err != nil {
		return nil, provisioningError(err)
	}
	return json.Marshal(out)
}

// PutEnrollmentGroup creates or replaces an enrollment group given as the
// service API's JSON, keyed by its enrollmentGroupId.
func (s *Server) PutEnrollmentGroup(group []byte) (json.RawMessage, error) {
	var g struct {
		EnrollmentGroupID string `json:"enrollmentGroupId"`
	}
	if err := json.Unmarshal(group, &g); err != nil || g.EnrollmentGroupID == "" {
		return nil, errors.New("emulator: the enrollment group must be a JSON object with an enrollmentGroupId")
	}
	out, err := s.dps.PutGroup(context.Background(), g.EnrollmentGroupID, group, "")
	if err != nil {
		return nil, provisioningError(err)
	}
	return json.Marshal(out)
}

// Enrollment returns an individual enrollment in the service API's JSON,
// keys included.
func (s *Server) Enrollment(registrationID string) (json.RawMessage, error) {
	e, err := s.dps.GetEnrollment(context.Background(), registrationID)
	if err != nil {
		return nil, provisioningError(err)
	}
	return json.Marshal(e)
}

// RegistrationState returns a device's registration state in the service
// API's JSON, or an error when the device has not registered.
func (s *Server) RegistrationState(registrationID string) (json.RawMessage, error) {
	st, err := s.dps.GetRegistration(context.Background(), registrationID)
	if err != nil {
		return nil, provisioningError(err)
	}
	return json.Marshal(st)
}

// ProvisioningError is a refusal of the provisioning service, as its API
// reports it.
type ProvisioningError struct {
	Status  int    // HTTP status
	Code    int    // six-digit errorCode
	Message string // what was wrong
}

func (e *ProvisioningError) Error() string {
	return fmt.Sprintf("emulator: provisioning: %d (%d): %s", e.Status, e.Code, e.Message)
}

func provisioningError(err error) error {
	var de *dps.Error
	if errors.As(err, &de) {
		return &ProvisioningError{Status: de.Status, Code: de.Code, Message: de.Message}
	}
	return err
}
