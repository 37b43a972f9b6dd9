// SPDX-License-Identifier: MIT

package dps

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// registration is the stored record of a registration id: the state the
// service API shows, how the device attested, and the operation that last
// registered it.
type registration struct {
	State       DeviceRegistrationState `json:"state"`
	Attestation string                  `json:"attestation"`
	GroupID     string                  `json:"groupId,omitempty"`
	LeafInfo    *X509CertificateInfo    `json:"leafInfo,omitempty"`
	SigningInfo *X509CertificateInfo    `json:"signingInfo,omitempty"`
	OperationID string                  `json:"operationId"`
}

// result is the registration as the device API returns it.
func (r *registration) result() *DeviceRegistrationResult {
	out := &DeviceRegistrationResult{DeviceRegistrationState: r.State}
	switch r.Attestation {
	case AttestationX509:
		out.X509 = &X509RegistrationResult{CertificateInfo: r.LeafInfo, EnrollmentGroupID: r.GroupID, SigningCertificateInfo: r.SigningInfo}
	case AttestationSymmetricKey:
		out.SymmetricKey = &SymmetricKeyRegistrationResult{EnrollmentGroupID: r.GroupID}
	}
	return out
}

// RegistrationRequest is the body of a register request.
type RegistrationRequest struct {
	RegistrationID string          `json:"registrationId"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	TPM            *TPMAttestation `json:"tpm,omitempty"`
	CSR            string          `json:"clientCertificateCsr,omitempty"`
}

// MaxPayload bounds the custom payload a device sends with its
// registration.
const MaxPayload = 64 << 10

// ParseRegistrationRequest reads a register body for registrationID: a
// JSON object whose registrationId, when present, names the same
// registration, with an optional payload of any JSON value. An empty body
// is a request without payload. TPM attestation and certificate issuance
// are refused as unsupported.
func ParseRegistrationRequest(registrationID string, body []byte) (*RegistrationRequest, error) {
	req := &RegistrationRequest{}
	if t := bytes.TrimSpace(body); len(t) > 0 {
		if t[0] != '{' {
			return nil, BadRequest("The registration request must be a JSON object such as {\"registrationId\":\"%s\"}.", registrationID)
		}
		if err := json.Unmarshal(t, req); err != nil {
			return nil, BadRequest("The registration request is not valid JSON: %v", err)
		}
	}
	if req.RegistrationID != "" && !strings.EqualFold(req.RegistrationID, registrationID) {
		return nil, BadRequest("The registrationId '%s' in the body is not '%s', the registration the request is for.", req.RegistrationID, registrationID)
	}
	if req.TPM != nil {
		return nil, Unsupported("TPM attestation is not supported by the emulator; use symmetric keys or X.509.")
	}
	if req.CSR != "" {
		return nil, Unsupported("Certificate issuance (clientCertificateCsr) is not supported by the emulator.")
	}
	if len(req.Payload) > MaxPayload {
		return nil, TooLarge("The registration payload is %d bytes; the emulator takes at most %d.", len(req.Payload), MaxPayload)
	}
	if bytes.Equal(bytes.TrimSpace(req.Payload), []byte("null")) {
		req.Payload = nil
	}
	req.RegistrationID = registrationID
	return req, nil
}

// Register serves a register request: it parses the body, attests the
// device and assigns it to the hub before it answers, then returns the
// operation with status "assigning", as the service's first answer reads.
// The outcome, "assigned" or "failed" with the error, is what the
// operation's status query returns. An assignment the hub refuses is such
// a failure; only a malformed request or a failed attestation is an error
// here.
func (s *Service) Register(ctx context.Context, c Credentials, body []byte) (*RegistrationOperationStatus, error) {
	req, err := ParseRegistrationRequest(c.RegistrationID, body)
	if err != nil {
		return nil, err
	}
	att, err := s.Authenticate(c)
	if err != nil {
		return nil, err
	}
	unlock := s.lockRegistration(key(att.RegistrationID))
	defer unlock()
	var prev registration
	var hasPrev bool
	if err := s.db.View(func(tx *store.Tx) error {
		var err error
		hasPrev, err = load(tx, store.DPSRegistrations, att.RegistrationID, &prev)
		return err
	}); err != nil {
		return nil, err
	}
	var prevp *registration
	if hasPrev {
		prevp = &prev
	}
	now := s.stamp()
	reg := &registration{
		State:       DeviceRegistrationState{RegistrationID: att.RegistrationID, CreatedDateTimeUTC: now, LastUpdatedDateTimeUTC: now, ETag: newETag()},
		Attestation: att.Type, GroupID: att.GroupID(), LeafInfo: att.leafInfo, SigningInfo: att.signingInfo,
		OperationID: newOperationID(),
	}
	if hasPrev && prev.State.CreatedDateTimeUTC != "" {
		reg.State.CreatedDateTimeUTC = prev.State.CreatedDateTimeUTC
	}
	deviceID, sub, payload, err := s.assign(ctx, att, req, prevp)
	switch {
	case err == nil:
		reg.State.Status, reg.State.Substatus = RegAssigned, sub
		reg.State.AssignedHub, reg.State.DeviceID, reg.State.Payload = s.cfg.AssignedHub(), deviceID, payload
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		e := assignmentError(err)
		if e.Status >= 500 {
			s.log.Error("provisioning assignment failed", "registrationId", att.RegistrationID, "err", err)
		}
		reg.State.Status, reg.State.ErrorCode, reg.State.ErrorMessage = RegFailed, e.Code, e.Message
	}
	if err := s.db.Update(func(tx *store.Tx) error { return save(tx, store.DPSRegistrations, att.RegistrationID, reg) }); err != nil {
		return nil, err
	}
	return &RegistrationOperationStatus{OperationID: reg.OperationID, Status: RegAssigning}, nil
}

// assignmentError turns a hub or webhook failure into the error the
// registration state records.
func assignmentError(err error) *Error {
	var de *Error
	if errors.As(err, &de) {
		return de
	}
	var he *huberr.Error
	if errors.As(err, &he) {
		return &Error{Status: he.Status, Code: he.Code, Message: "The hub refused the device: " + he.Message}
	}
	return AsError(err)
}

// OperationStatus answers an operation status query: the registration as
// the operation left it.
func (s *Service) OperationStatus(ctx context.Context, c Credentials, operationID string) (*RegistrationOperationStatus, error) {
	if _, err := s.Authenticate(c); err != nil {
		return nil, err
	}
	reg, err := s.loadRegistration(c.RegistrationID)
	if err != nil {
		return nil, err
	}
	if reg == nil || reg.OperationID != operationID {
		return nil, OperationNotFound(operationID)
	}
	return &RegistrationOperationStatus{OperationID: reg.OperationID, Status: reg.State.Status, RegistrationState: reg.result()}, nil
}

// RegistrationStatus answers the device's status lookup
// (POST /{idScope}/registrations/{id}).
func (s *Service) RegistrationStatus(ctx context.Context, c Credentials) (*DeviceRegistrationResult, error) {
	if _, err := s.Authenticate(c); err != nil {
		return nil, err
	}
	reg, err := s.loadRegistration(c.RegistrationID)
	if err != nil {
		return nil, err
	}
	if reg == nil {
		return nil, RegistrationNotFound(c.RegistrationID)
	}
	return reg.result(), nil
}

func (s *Service) loadRegistration(id string) (*registration, error) {
	var reg registration
	var ok bool
	err := s.db.View(func(tx *store.Tx) error {
		var err error
		ok, err = load(tx, store.DPSRegistrations, id, &reg)
		return err
	})
	if err != nil || !ok {
		return nil, err
	}
	return &reg, nil
}

// enrollmentSettings are what an assignment reads from the enrollment or
// group that attested the device.
type enrollmentSettings struct {
	deviceID    string
	caps        DeviceCapabilities
	reprovision ReprovisionPolicy
	allocation  string
	custom      *CustomAllocationDefinition
	initialTwin *InitialTwin
}

func settingsOf(a *Attestation) enrollmentSettings {
	var out enrollmentSettings
	var caps *DeviceCapabilities
	var rp *ReprovisionPolicy
	if e := a.Individual; e != nil {
		out.deviceID, caps, rp = e.DeviceID, e.Capabilities, e.ReprovisionPolicy
		out.allocation, out.custom, out.initialTwin = e.AllocationPolicy, e.CustomAllocationDefinition, e.InitialTwin
	} else {
		g := a.Group
		caps, rp = g.Capabilities, g.ReprovisionPolicy
		out.allocation, out.custom, out.initialTwin = g.AllocationPolicy, g.CustomAllocationDefinition, g.InitialTwin
	}
	if caps != nil {
		out.caps = *caps
	}
	out.reprovision = ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	if rp != nil {
		out.reprovision = *rp
	}
	return out
}

// assign creates or updates the device's hub identity and returns its id,
// the substatus and the payload to return to the device.
func (s *Service) assign(ctx context.Context, att *Attestation, req *RegistrationRequest, prev *registration) (deviceID, substatus string, payload json.RawMessage, err error) {
	set := settingsOf(att)
	deviceID = set.deviceID
	if deviceID == "" {
		deviceID = att.RegistrationID
	}
	initialTwin := set.initialTwin
	if set.allocation == AllocCustom {
		res, err := s.allocate(ctx, att, req, prev, set)
		if err != nil {
			return "", "", nil, err
		}
		if res.InitialTwin != nil {
			initialTwin = res.InitialTwin
		}
		payload = res.Payload
	}
	if err := hub.ValidateDeviceID(deviceID); err != nil {
		return "", "", nil, BadRequest("The registration id '%s' is not a valid device id: %s", deviceID, huberr.As(err).Message)
	}
	substatus, err = s.applyToHub(ctx, deviceID, att, set, initialTwin, prev)
	return deviceID, substatus, payload, err
}

// applyToHub creates the identity with the attested credentials, the
// capabilities and the initial twin, or updates an existing one. A repeated
// registration of the same device keeps the twin when the reprovision
// policy migrates device data and resets it to the initial twin otherwise.
func (s *Service) applyToHub(ctx context.Context, deviceID string, att *Attestation, set enrollmentSettings, initialTwin *InitialTwin, prev *registration) (string, error) {
	auth := hub.Authentication{Type: hub.AuthSAS, SymmetricKey: &hub.SymmetricKey{PrimaryKey: att.keys[0], SecondaryKey: att.keys[1]}}
	if att.Type == AttestationX509 {
		t := &hub.X509Thumbprint{}
		p := att.thumbprints[0]
		t.PrimaryThumbprint = &p
		if len(att.thumbprints) > 1 {
			q := att.thumbprints[1]
			t.SecondaryThumbprint = &q
		}
		auth = hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: t}
	}
	id := hub.Identity{DeviceID: deviceID}
	existing, err := s.hub.GetDevice(ctx, deviceID)
	if errors.Is(err, huberr.DeviceNotFound("")) {
		d := &hub.Device{DeviceID: deviceID, Authentication: auth, Capabilities: hub.Capabilities{IotEdge: set.caps.IotEdge}}
		if _, err := s.hub.PutDevice(ctx, d, ""); err != nil {
			return "", err
		}
		if err := s.applyTwin(ctx, id, initialTwin, false); err != nil {
			// Leave nothing half made: the device comes with its twin or not at all.
			if derr := s.hub.DeleteDevice(context.WithoutCancel(ctx), deviceID, ""); derr != nil {
				s.log.Error("provisioning: could not remove a device whose initial twin failed", "deviceId", deviceID, "err", derr)
			}
			return "", err
		}
		return SubInitialAssignment, nil
	}
	if err != nil {
		return "", err
	}
	d := *existing
	d.Authentication = auth
	d.Capabilities.IotEdge = set.caps.IotEdge
	if _, err := s.hub.PutDevice(ctx, &d, "*"); err != nil {
		return "", err
	}
	again := prev != nil && prev.State.Status == RegAssigned && prev.State.DeviceID == deviceID
	switch {
	case !again:
		// The identity was made outside the service: this is its initial
		// assignment, and the initial twin is merged into its twin.
		return SubInitialAssignment, s.applyTwin(ctx, id, initialTwin, false)
	case !set.reprovision.UpdateHubAssignment:
		return prev.State.Substatus, nil
	case set.reprovision.MigrateDeviceData:
		return SubDeviceDataMigrated, nil
	}
	return SubDeviceDataReset, s.applyTwin(ctx, id, initialTwin, true)
}

// applyTwin writes the initial twin: merged (PATCH), or with reset,
// replacing tags and desired properties (PUT), absent sections emptied.
func (s *Service) applyTwin(ctx context.Context, id hub.Identity, t *InitialTwin, reset bool) error {
	body, err := initialTwinUpdate(t, reset)
	if err != nil {
		return err
	}
	if string(body) == "{}" {
		return nil
	}
	_, err = s.hub.UpdateTwin(ctx, id, body, "", reset)
	return err
}
