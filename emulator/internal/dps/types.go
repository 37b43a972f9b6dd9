// SPDX-License-Identifier: MIT

package dps

import "encoding/json"

// The wire types of the service API (api-version 2021-10-01) and the device
// API (2019-03-31), with the service's JSON names. They are what the
// adapters marshal; the store keeps them too.

// timeLayout is the service's timestamp format (seven fractional digits).
const timeLayout = "2006-01-02T15:04:05.0000000Z"

// Attestation types.
const (
	AttestationSymmetricKey = "symmetricKey"
	AttestationX509         = "x509"
	AttestationTPM          = "tpm"
)

// Provisioning statuses of an enrollment.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Registration statuses and substatuses.
const (
	RegUnassigned = "unassigned"
	RegAssigning  = "assigning"
	RegAssigned   = "assigned"
	RegFailed     = "failed"
	RegDisabled   = "disabled"

	SubInitialAssignment  = "initialAssignment"
	SubDeviceDataMigrated = "deviceDataMigrated"
	SubDeviceDataReset    = "deviceDataReset"
)

// Allocation policies. Every one assigns to this hub, the only one linked.
const (
	AllocHashed     = "hashed"
	AllocGeoLatency = "geoLatency"
	AllocStatic     = "static"
	AllocCustom     = "custom"
)

// SymmetricKeyAttestation holds an enrollment's keys (base64).
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509CertificateInfo describes a stored certificate; the service returns
// it instead of the certificate.
type X509CertificateInfo struct {
	SubjectName      string `json:"subjectName"`
	SHA1Thumbprint   string `json:"sha1Thumbprint"`
	SHA256Thumbprint string `json:"sha256Thumbprint"`
	IssuerName       string `json:"issuerName"`
	NotBeforeUTC     string `json:"notBeforeUtc"`
	NotAfterUTC      string `json:"notAfterUtc"`
	SerialNumber     string `json:"serialNumber"`
	Version          int    `json:"version"`
}

// X509CertificateWithInfo is one certificate slot: the certificate on
// input (PEM, base64 of PEM, or base64 DER), its info on output.
type X509CertificateWithInfo struct {
	Certificate string               `json:"certificate,omitempty"`
	Info        *X509CertificateInfo `json:"info,omitempty"`
}

// X509Certificates is a primary and optional secondary certificate.
type X509Certificates struct {
	Primary   *X509CertificateWithInfo `json:"primary,omitempty"`
	Secondary *X509CertificateWithInfo `json:"secondary,omitempty"`
}

// X509CAReferences names CA certificates uploaded to the service; the
// emulator has no certificate store and refuses them.
type X509CAReferences struct {
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// X509Attestation is an X.509 attestation: client certificates for an
// individual enrollment, signing (CA) certificates for a group.
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
	CAReferences        *X509CAReferences `json:"caReferences,omitempty"`
}

// TPMAttestation is accepted on the wire only to be refused.
type TPMAttestation struct {
	EndorsementKey string `json:"endorsementKey,omitempty"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
}

// AttestationMechanism is how devices of an enrollment prove who they are.
type AttestationMechanism struct {
	Type         string                   `json:"type"`
	TPM          *TPMAttestation          `json:"tpm,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
}

// InitialTwin is the twin a newly assigned device starts with.
type InitialTwin struct {
	Tags       json.RawMessage        `json:"tags,omitempty"`
	Properties *InitialTwinProperties `json:"properties,omitempty"`
}

// InitialTwinProperties holds the initial desired properties.
type InitialTwinProperties struct {
	Desired json.RawMessage `json:"desired,omitempty"`
}

// ReprovisionPolicy says what a repeated registration does. With one hub
// only migrateDeviceData matters: keep the twin, or reset it to the
// initial twin.
type ReprovisionPolicy struct {
	UpdateHubAssignment bool `json:"updateHubAssignment"`
	MigrateDeviceData   bool `json:"migrateDeviceData"`
}

// DeviceCapabilities of the assigned identity.
type DeviceCapabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// CustomAllocationDefinition is the webhook of the custom allocation policy.
type CustomAllocationDefinition struct {
	WebhookURL string `json:"webhookUrl"`
	APIVersion string `json:"apiVersion"`
}

// IndividualEnrollment enrolls one device by its registration id.
type IndividualEnrollment struct {
	RegistrationID             string                      `json:"registrationId"`
	DeviceID                   string                      `json:"deviceId,omitempty"`
	RegistrationState          *DeviceRegistrationState    `json:"registrationState,omitempty"`
	Attestation                AttestationMechanism        `json:"attestation"`
	Capabilities               *DeviceCapabilities         `json:"capabilities,omitempty"`
	IotHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	ETag                       string                      `json:"etag,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                      `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                      `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IotHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
	OptionalDeviceInformation  json.RawMessage             `json:"optionalDeviceInformation,omitempty"`
}

// EnrollmentGroup enrolls every device that attests with the group's key
// (derived per registration id) or a certificate chaining to its CA.
type EnrollmentGroup struct {
	EnrollmentGroupID          string                      `json:"enrollmentGroupId"`
	Attestation                AttestationMechanism        `json:"attestation"`
	Capabilities               *DeviceCapabilities         `json:"capabilities,omitempty"`
	IotHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	ETag                       string                      `json:"etag,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus,omitempty"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                      `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                      `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IotHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
}

// DeviceRegistrationState is the service's record of one registration.
type DeviceRegistrationState struct {
	RegistrationID         string          `json:"registrationId"`
	CreatedDateTimeUTC     string          `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string          `json:"assignedHub,omitempty"`
	DeviceID               string          `json:"deviceId,omitempty"`
	Status                 string          `json:"status"`
	Substatus              string          `json:"substatus,omitempty"`
	ErrorCode              int             `json:"errorCode,omitempty"`
	ErrorMessage           string          `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string          `json:"lastUpdatedDateTimeUtc,omitempty"`
	ETag                   string          `json:"etag,omitempty"`
	Payload                json.RawMessage `json:"payload,omitempty"`
}

// DeviceRegistrationResult is what the device API returns about a
// registration: the state plus how the device attested.
type DeviceRegistrationResult struct {
	X509         *X509RegistrationResult         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyRegistrationResult `json:"symmetricKey,omitempty"`
	DeviceRegistrationState
}

// X509RegistrationResult says which certificate attested.
type X509RegistrationResult struct {
	CertificateInfo        *X509CertificateInfo `json:"certificateInfo,omitempty"`
	EnrollmentGroupID      string               `json:"enrollmentGroupId,omitempty"`
	SigningCertificateInfo *X509CertificateInfo `json:"signingCertificateInfo,omitempty"`
}

// SymmetricKeyRegistrationResult says which group's key attested.
type SymmetricKeyRegistrationResult struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// RegistrationOperationStatus answers a register request and an operation
// status query.
type RegistrationOperationStatus struct {
	OperationID       string                    `json:"operationId"`
	Status            string                    `json:"status"`
	RegistrationState *DeviceRegistrationResult `json:"registrationState,omitempty"`
}

// BulkEnrollmentOperation is the body of POST /enrollments.
type BulkEnrollmentOperation struct {
	Mode        string                 `json:"mode"`
	Enrollments []IndividualEnrollment `json:"enrollments"`
}

// BulkEnrollmentOperationResult answers it.
type BulkEnrollmentOperationResult struct {
	IsSuccessful bool                           `json:"isSuccessful"`
	Errors       []BulkEnrollmentOperationError `json:"errors"`
}

// BulkEnrollmentOperationError is one enrollment the bulk operation did
// not apply.
type BulkEnrollmentOperationError struct {
	RegistrationID string `json:"registrationId"`
	ErrorCode      int    `json:"errorCode"`
	ErrorStatus    string `json:"errorStatus"`
}
