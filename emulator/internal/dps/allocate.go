// SPDX-License-Identifier: MIT

package dps

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// allocationRequest is what the service posts to a custom allocation
// webhook (DPS documentation, "custom allocation policies").
type allocationRequest struct {
	IndividualEnrollment *IndividualEnrollment `json:"individualEnrollment,omitempty"`
	EnrollmentGroup      *EnrollmentGroup      `json:"enrollmentGroup,omitempty"`
	DeviceRuntimeContext runtimeContext        `json:"deviceRuntimeContext"`
	LinkedHubs           []string              `json:"linkedHubs"`
}

type runtimeContext struct {
	RegistrationID        string          `json:"registrationId"`
	CurrentIotHubHostName string          `json:"currentIotHubHostName,omitempty"`
	CurrentDeviceID       string          `json:"currentDeviceId,omitempty"`
	SymmetricKey          *struct{}       `json:"symmetricKey,omitempty"`
	X509                  *x509Context    `json:"x509,omitempty"`
	Payload               json.RawMessage `json:"payload,omitempty"`
}

type x509Context struct {
	CertificateInfo *X509CertificateInfo `json:"certificateInfo,omitempty"`
}

// allocationResponse is the webhook's answer: the hub to assign to, and
// optionally an initial twin that replaces the enrollment's and a payload
// returned to the device.
type allocationResponse struct {
	IotHubHostName string          `json:"iotHubHostName"`
	InitialTwin    *InitialTwin    `json:"initialTwin"`
	Payload        json.RawMessage `json:"payload"`
}

// maxAllocationResponse bounds what is read from a webhook.
const maxAllocationResponse = 1 << 20

// allocate calls the custom allocation webhook. Every way it can fail is
// 400209, the code the service records for a failed custom allocation.
func (s *Service) allocate(ctx context.Context, att *Attestation, req *RegistrationRequest, prev *registration, set enrollmentSettings) (*allocationResponse, error) {
	in := allocationRequest{
		DeviceRuntimeContext: runtimeContext{RegistrationID: att.RegistrationID, Payload: req.Payload},
		LinkedHubs:           []string{s.cfg.AssignedHub()},
	}
	if att.Individual != nil {
		in.IndividualEnrollment = s.enrollmentView(att.Individual, nil)
	} else {
		in.EnrollmentGroup = s.groupView(att.Group)
	}
	if att.Type == AttestationX509 {
		in.DeviceRuntimeContext.X509 = &x509Context{CertificateInfo: att.leafInfo}
	} else {
		in.DeviceRuntimeContext.SymmetricKey = &struct{}{}
	}
	if prev != nil && prev.State.Status == RegAssigned {
		in.DeviceRuntimeContext.CurrentIotHubHostName = prev.State.AssignedHub
		in.DeviceRuntimeContext.CurrentDeviceID = prev.State.DeviceID
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, set.custom.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return nil, CustomAllocationFailed("Custom allocation failed: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := s.client.Do(hreq)
	if err != nil {
		return nil, CustomAllocationFailed("Custom allocation failed: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAllocationResponse))
	if err != nil {
		return nil, CustomAllocationFailed("Custom allocation failed reading the webhook's answer: %v", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, CustomAllocationFailed("Custom allocation failed with status code: %d", resp.StatusCode)
	}
	var out allocationResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, CustomAllocationFailed("Custom allocation failed: the webhook's answer is not valid JSON: %v", err)
	}
	if out.IotHubHostName == "" || !s.isThisHub(out.IotHubHostName) {
		return nil, CustomAllocationFailed("Custom allocation failed: the webhook chose hub '%s'; the only linked hub is %s.", out.IotHubHostName, s.cfg.AssignedHub())
	}
	if out.InitialTwin != nil {
		if err := s.checkInitialTwin(out.InitialTwin); err != nil {
			return nil, CustomAllocationFailed("Custom allocation failed: %s", AsError(err).Message)
		}
	}
	return &out, nil
}
