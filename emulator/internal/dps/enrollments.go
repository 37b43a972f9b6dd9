// SPDX-License-Identifier: MIT

package dps

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
	"github.com/iothubemulator/iothub/internal/sas"
)

// decodeStrict reads a JSON object into v; anything else is 400.
func decodeStrict(body []byte, v any, what string) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return BadRequest("The request body is empty; send the %s as JSON.", what)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return BadRequest("The request body is not a valid %s: %v", what, err)
	}
	return nil
}

// settings are the fields individual enrollments and groups share, checked
// and defaulted in one place.
type settings struct {
	kind        string // "enrollment" or "enrollment group", for messages
	attestation *AttestationMechanism
	status      *string
	caps        **DeviceCapabilities
	reprovision **ReprovisionPolicy
	allocation  *string
	hubHost     *string
	hubs        *[]string
	custom      **CustomAllocationDefinition
	initialTwin **InitialTwin
}

// check validates and fills in defaults: generated keys, enabled status,
// the reprovision policy's defaults (both true), hashed allocation.
func (s *Service) check(c settings, group bool) error {
	if err := checkAttestation(c.attestation, group); err != nil {
		return err
	}
	switch *c.status {
	case "":
		*c.status = StatusEnabled
	case StatusEnabled, StatusDisabled:
	default:
		return BadRequest("provisioningStatus '%s' is not valid; use 'enabled' or 'disabled'.", *c.status)
	}
	if *c.caps == nil {
		*c.caps = &DeviceCapabilities{}
	}
	if *c.reprovision == nil {
		*c.reprovision = &ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	}
	switch *c.allocation {
	case "":
		*c.allocation = AllocHashed
	case AllocHashed, AllocGeoLatency, AllocStatic:
	case AllocCustom:
		d := *c.custom
		if d == nil || d.WebhookURL == "" {
			return BadRequest("The custom allocation policy needs customAllocationDefinition.webhookUrl.")
		}
		u, err := url.Parse(d.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return BadRequest("customAllocationDefinition.webhookUrl '%s' is not an http or https URL.", d.WebhookURL)
		}
	default:
		return BadRequest("allocationPolicy '%s' is not valid; use hashed, geoLatency, static or custom.", *c.allocation)
	}
	if h := *c.hubHost; h != "" && !s.isThisHub(h) {
		return BadRequest("iotHubHostName '%s' is not a hub linked to this provisioning service; the emulator links only %s.", h, s.cfg.AssignedHub())
	}
	for _, h := range *c.hubs {
		if !s.isThisHub(h) {
			return BadRequest("iotHubs names '%s', which is not linked to this provisioning service; the emulator links only %s.", h, s.cfg.AssignedHub())
		}
	}
	if *c.initialTwin != nil {
		if err := s.checkInitialTwin(*c.initialTwin); err != nil {
			return err
		}
	}
	return nil
}

// isThisHub reports whether a hub host name names the emulator's hub.
func (s *Service) isThisHub(h string) bool {
	h = strings.ToLower(h)
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	if strings.EqualFold(h, stripPort(s.cfg.AssignedHub())) {
		return true
	}
	for _, x := range s.hosts {
		if x == h {
			return true
		}
	}
	return false
}

func stripPort(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i]
	}
	return h
}

// checkInitialTwin applies the initial twin to a scratch twin so that a
// twin the hub would refuse is refused now, not at a device's assignment.
func (s *Service) checkInitialTwin(t *InitialTwin) error {
	body, err := initialTwinUpdate(t, false)
	if err != nil {
		return err
	}
	if _, err := twin.New(s.Now()).PatchTwin(body, s.Now()); err != nil {
		return BadRequest("The initial twin is not valid: %v", err)
	}
	return nil
}

// initialTwinUpdate renders an initial twin as a service twin update body.
// With full, absent sections become {} so that a PUT resets them.
func initialTwinUpdate(t *InitialTwin, full bool) ([]byte, error) {
	u := map[string]any{}
	var tags, desired json.RawMessage
	if t != nil {
		tags = t.Tags
		if t.Properties != nil {
			desired = t.Properties.Desired
		}
	}
	for _, sec := range []struct {
		name string
		raw  json.RawMessage
	}{{"tags", tags}, {"desired", desired}} {
		raw := bytes.TrimSpace(sec.raw)
		if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			if !full {
				continue
			}
			raw = []byte("{}")
		}
		if raw[0] != '{' {
			return nil, BadRequest("initialTwin %s must be a JSON object.", sec.name)
		}
		if sec.name == "tags" {
			u["tags"] = json.RawMessage(raw)
		} else {
			u["properties"] = map[string]json.RawMessage{"desired": raw}
		}
	}
	return json.Marshal(u)
}

// checkAttestation validates an attestation mechanism and generates the
// symmetric keys left empty.
func checkAttestation(a *AttestationMechanism, group bool) error {
	switch a.Type {
	case AttestationSymmetricKey:
		if a.SymmetricKey == nil {
			a.SymmetricKey = &SymmetricKeyAttestation{}
		}
		k := a.SymmetricKey
		if k.PrimaryKey == "" {
			k.PrimaryKey = sas.GenerateKey()
		}
		if k.SecondaryKey == "" {
			k.SecondaryKey = sas.GenerateKey()
		}
		for _, x := range []struct{ which, key string }{{"primary", k.PrimaryKey}, {"secondary", k.SecondaryKey}} {
			if err := checkKey(x.key); err != nil {
				return BadRequest("The %s symmetric key is %v; use base64 of 16 to 64 bytes.", x.which, err)
			}
		}
		a.X509, a.TPM = nil, nil
	case AttestationX509:
		x := a.X509
		if x == nil {
			return BadRequest("An x509 attestation needs its x509 member.")
		}
		if x.CAReferences != nil && (x.CAReferences.Primary != "" || x.CAReferences.Secondary != "") {
			return Unsupported("CA references name certificates uploaded to the service, which the emulator does not have; put the CA certificate in signingCertificates instead.")
		}
		x.CAReferences = nil
		set, want, other := x.ClientCertificates, "clientCertificates", x.SigningCertificates
		if group {
			set, want, other = x.SigningCertificates, "signingCertificates", x.ClientCertificates
		}
		if other != nil {
			if group {
				return BadRequest("An enrollment group attests with signingCertificates (a CA), not clientCertificates.")
			}
			return BadRequest("An individual enrollment attests with clientCertificates; enroll a CA with an enrollment group.")
		}
		if set == nil || set.Primary == nil {
			return BadRequest("An x509 attestation needs %s.primary.", want)
		}
		for _, slot := range []struct {
			s     *X509CertificateWithInfo
			which string
		}{{set.Primary, "primary"}, {set.Secondary, "secondary"}} {
			c, err := prepareSlot(slot.s, slot.which)
			if err != nil {
				return err
			}
			if c != nil && group && !c.IsCA {
				return BadRequest("The %s signing certificate is not a CA certificate (basic constraints CA:FALSE).", slot.which)
			}
		}
		a.SymmetricKey, a.TPM = nil, nil
	case AttestationTPM:
		return Unsupported("TPM attestation is not supported by the emulator; use symmetric keys or X.509.")
	case "":
		return BadRequest("The attestation type is required: symmetricKey or x509.")
	default:
		return BadRequest("The attestation type '%s' is not valid; use symmetricKey or x509.", a.Type)
	}
	return nil
}

// PutEnrollment creates or replaces an individual enrollment, as
// PUT /enrollments/{id}. With If-Match, the enrollment must exist with that
// etag.
func (s *Service) PutEnrollment(ctx context.Context, id string, body []byte, ifMatch string) (*IndividualEnrollment, error) {
	var e IndividualEnrollment
	if err := decodeStrict(body, &e, "individual enrollment"); err != nil {
		return nil, err
	}
	if e.RegistrationID == "" {
		e.RegistrationID = id
	}
	if !strings.EqualFold(e.RegistrationID, id) {
		return nil, BadRequest("The registrationId '%s' in the body does not match '%s' in the path.", e.RegistrationID, id)
	}
	return s.putEnrollment(&e, ifMatch, false)
}

// CreateEnrollment stores a new individual enrollment, given in the service
// API's form; one that exists is left as it is and reported as Conflict.
func (s *Service) CreateEnrollment(e *IndividualEnrollment) (*IndividualEnrollment, error) {
	return s.putEnrollment(e, "", true)
}

// CreateGroup is CreateEnrollment for an enrollment group.
func (s *Service) CreateGroup(g *EnrollmentGroup) (*EnrollmentGroup, error) {
	return s.putGroup(g, "", true)
}

// putEnrollment stores e; createOnly refuses an existing enrollment (bulk
// create, config file).
func (s *Service) putEnrollment(e *IndividualEnrollment, ifMatch string, createOnly bool) (*IndividualEnrollment, error) {
	if err := ValidateID("registration id", e.RegistrationID); err != nil {
		return nil, err
	}
	if e.DeviceID != "" {
		if err := hub.ValidateDeviceID(e.DeviceID); err != nil {
			return nil, BadRequest("deviceId: %s", huberr.As(err).Message)
		}
	}
	err := s.check(settings{kind: "enrollment", attestation: &e.Attestation, status: &e.ProvisioningStatus, caps: &e.Capabilities,
		reprovision: &e.ReprovisionPolicy, allocation: &e.AllocationPolicy, hubHost: &e.IotHubHostName, hubs: &e.IotHubs,
		custom: &e.CustomAllocationDefinition, initialTwin: &e.InitialTwin}, false)
	if err != nil {
		return nil, err
	}
	e.RegistrationState = nil
	err = s.db.Update(func(tx *store.Tx) error {
		var old IndividualEnrollment
		exists, err := load(tx, store.DPSEnrollments, e.RegistrationID, &old)
		if err != nil {
			return err
		}
		switch {
		case exists && createOnly:
			return Conflict("Enrollment %s already exists.", e.RegistrationID)
		case !exists && ifMatch != "" && ifMatch != "*":
			return EnrollmentNotFound(e.RegistrationID)
		case exists && !matchETag(ifMatch, old.ETag):
			return PreconditionFailed("The etag %s does not match enrollment %s's etag.", ifMatch, e.RegistrationID)
		}
		now := s.stamp()
		e.CreatedDateTimeUTC = now
		if exists {
			e.CreatedDateTimeUTC = old.CreatedDateTimeUTC
		}
		e.LastUpdatedDateTimeUTC = now
		e.ETag = newETag()
		return save(tx, store.DPSEnrollments, e.RegistrationID, e)
	})
	if err != nil {
		return nil, err
	}
	return s.enrollmentView(e, nil), nil
}

// enrollmentView is e as the service returns it: certificates replaced by
// their info, the hub named, and the registration state attached.
func (s *Service) enrollmentView(e *IndividualEnrollment, st *DeviceRegistrationState) *IndividualEnrollment {
	out := *e
	hideCertificates(&out.Attestation)
	if out.IotHubHostName == "" {
		out.IotHubHostName = s.cfg.AssignedHub()
	}
	out.RegistrationState = st
	return &out
}

// GetEnrollment returns an individual enrollment with its registration
// state.
func (s *Service) GetEnrollment(ctx context.Context, id string) (*IndividualEnrollment, error) {
	var e IndividualEnrollment
	var reg registration
	var hasReg bool
	err := s.db.View(func(tx *store.Tx) error {
		ok, err := load(tx, store.DPSEnrollments, id, &e)
		if err != nil {
			return err
		}
		if !ok {
			return EnrollmentNotFound(id)
		}
		hasReg, err = load(tx, store.DPSRegistrations, id, &reg)
		if hasReg && reg.GroupID != "" {
			hasReg = false // a registration through a group before the enrollment existed
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var st *DeviceRegistrationState
	if hasReg {
		st = &reg.State
	}
	return s.enrollmentView(&e, st), nil
}

// DeleteEnrollment deletes an individual enrollment and its registration
// state; the hub identity stays, as on the service.
func (s *Service) DeleteEnrollment(ctx context.Context, id, ifMatch string) error {
	return s.db.Update(func(tx *store.Tx) error {
		var e IndividualEnrollment
		ok, err := load(tx, store.DPSEnrollments, id, &e)
		if err != nil {
			return err
		}
		if !ok {
			return EnrollmentNotFound(id)
		}
		if !matchETag(ifMatch, e.ETag) {
			return PreconditionFailed("The etag %s does not match enrollment %s's etag.", ifMatch, id)
		}
		var reg registration
		if has, err := load(tx, store.DPSRegistrations, id, &reg); err != nil {
			return err
		} else if has && reg.GroupID == "" {
			if err := tx.Delete(store.DPSRegistrations, key(id)); err != nil {
				return err
			}
		}
		return tx.Delete(store.DPSEnrollments, key(id))
	})
}

// EnrollmentAttestation returns an enrollment's attestation mechanism with
// its keys (POST /enrollments/{id}/attestationmechanism).
func (s *Service) EnrollmentAttestation(ctx context.Context, id string) (*AttestationMechanism, error) {
	e, err := s.GetEnrollment(ctx, id)
	if err != nil {
		return nil, err
	}
	return &e.Attestation, nil
}

// Bulk modes of POST /enrollments.
const (
	BulkCreate            = "create"
	BulkUpdate            = "update"
	BulkUpdateIfMatchETag = "updateIfMatchEtag"
	BulkDelete            = "delete"
)

// maxBulk is the service's limit of enrollments per bulk operation.
const maxBulk = 10

// BulkEnrollments applies a bulk operation one enrollment at a time and
// reports those it could not apply, as the service does.
func (s *Service) BulkEnrollments(ctx context.Context, body []byte) (*BulkEnrollmentOperationResult, error) {
	var op BulkEnrollmentOperation
	if err := decodeStrict(body, &op, "bulk enrollment operation"); err != nil {
		return nil, err
	}
	switch op.Mode {
	case BulkCreate, BulkUpdate, BulkUpdateIfMatchETag, BulkDelete:
	default:
		return nil, BadRequest("The bulk mode '%s' is not valid; use create, update, updateIfMatchEtag or delete.", op.Mode)
	}
	if len(op.Enrollments) == 0 || len(op.Enrollments) > maxBulk {
		return nil, BadRequest("A bulk operation takes 1 to %d enrollments; this one has %d.", maxBulk, len(op.Enrollments))
	}
	res := &BulkEnrollmentOperationResult{IsSuccessful: true, Errors: []BulkEnrollmentOperationError{}}
	for i := range op.Enrollments {
		e := op.Enrollments[i]
		var err error
		switch op.Mode {
		case BulkCreate:
			_, err = s.putEnrollment(&e, "", true)
		case BulkUpdate:
			_, err = s.putEnrollment(&e, "", false)
		case BulkUpdateIfMatchETag:
			etag := e.ETag
			if etag == "" {
				etag = "\x00" // matches no stored etag
			}
			_, err = s.putEnrollment(&e, etag, false)
		case BulkDelete:
			err = s.DeleteEnrollment(ctx, e.RegistrationID, e.ETag)
		}
		if err != nil {
			de := AsError(err)
			res.IsSuccessful = false
			res.Errors = append(res.Errors, BulkEnrollmentOperationError{RegistrationID: e.RegistrationID, ErrorCode: de.Code, ErrorStatus: de.Message})
		}
	}
	return res, nil
}

// PutGroup creates or replaces an enrollment group.
func (s *Service) PutGroup(ctx context.Context, id string, body []byte, ifMatch string) (*EnrollmentGroup, error) {
	var g EnrollmentGroup
	if err := decodeStrict(body, &g, "enrollment group"); err != nil {
		return nil, err
	}
	if g.EnrollmentGroupID == "" {
		g.EnrollmentGroupID = id
	}
	if !strings.EqualFold(g.EnrollmentGroupID, id) {
		return nil, BadRequest("The enrollmentGroupId '%s' in the body does not match '%s' in the path.", g.EnrollmentGroupID, id)
	}
	return s.putGroup(&g, ifMatch, false)
}

func (s *Service) putGroup(g *EnrollmentGroup, ifMatch string, createOnly bool) (*EnrollmentGroup, error) {
	if err := ValidateID("enrollment group id", g.EnrollmentGroupID); err != nil {
		return nil, err
	}
	err := s.check(settings{kind: "enrollment group", attestation: &g.Attestation, status: &g.ProvisioningStatus, caps: &g.Capabilities,
		reprovision: &g.ReprovisionPolicy, allocation: &g.AllocationPolicy, hubHost: &g.IotHubHostName, hubs: &g.IotHubs,
		custom: &g.CustomAllocationDefinition, initialTwin: &g.InitialTwin}, true)
	if err != nil {
		return nil, err
	}
	err = s.db.Update(func(tx *store.Tx) error {
		var old EnrollmentGroup
		exists, err := load(tx, store.DPSGroups, g.EnrollmentGroupID, &old)
		if err != nil {
			return err
		}
		switch {
		case exists && createOnly:
			return Conflict("Enrollment group %s already exists.", g.EnrollmentGroupID)
		case !exists && ifMatch != "" && ifMatch != "*":
			return EnrollmentGroupNotFound(g.EnrollmentGroupID)
		case exists && !matchETag(ifMatch, old.ETag):
			return PreconditionFailed("The etag %s does not match enrollment group %s's etag.", ifMatch, g.EnrollmentGroupID)
		}
		now := s.stamp()
		g.CreatedDateTimeUTC = now
		if exists {
			g.CreatedDateTimeUTC = old.CreatedDateTimeUTC
		}
		g.LastUpdatedDateTimeUTC = now
		g.ETag = newETag()
		return save(tx, store.DPSGroups, g.EnrollmentGroupID, g)
	})
	if err != nil {
		return nil, err
	}
	return s.groupView(g), nil
}

func (s *Service) groupView(g *EnrollmentGroup) *EnrollmentGroup {
	out := *g
	hideCertificates(&out.Attestation)
	if out.IotHubHostName == "" {
		out.IotHubHostName = s.cfg.AssignedHub()
	}
	return &out
}

// GetGroup returns an enrollment group.
func (s *Service) GetGroup(ctx context.Context, id string) (*EnrollmentGroup, error) {
	var g EnrollmentGroup
	err := s.db.View(func(tx *store.Tx) error {
		ok, err := load(tx, store.DPSGroups, id, &g)
		if err == nil && !ok {
			err = EnrollmentGroupNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.groupView(&g), nil
}

// DeleteGroup deletes an enrollment group. The registration states of its
// devices stay, as on the service, until deleted themselves.
func (s *Service) DeleteGroup(ctx context.Context, id, ifMatch string) error {
	return s.db.Update(func(tx *store.Tx) error {
		var g EnrollmentGroup
		ok, err := load(tx, store.DPSGroups, id, &g)
		if err != nil {
			return err
		}
		if !ok {
			return EnrollmentGroupNotFound(id)
		}
		if !matchETag(ifMatch, g.ETag) {
			return PreconditionFailed("The etag %s does not match enrollment group %s's etag.", ifMatch, id)
		}
		return tx.Delete(store.DPSGroups, key(id))
	})
}

// GroupAttestation returns a group's attestation mechanism with its keys.
func (s *Service) GroupAttestation(ctx context.Context, id string) (*AttestationMechanism, error) {
	g, err := s.GetGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	return &g.Attestation, nil
}

// GetRegistration returns a device's registration state.
func (s *Service) GetRegistration(ctx context.Context, id string) (*DeviceRegistrationState, error) {
	var reg registration
	err := s.db.View(func(tx *store.Tx) error {
		ok, err := load(tx, store.DPSRegistrations, id, &reg)
		if err == nil && !ok {
			err = RegistrationNotFound(id)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &reg.State, nil
}

// DeleteRegistration deletes a registration state; the next registration
// of the device is an initial assignment again. The hub identity stays.
func (s *Service) DeleteRegistration(ctx context.Context, id, ifMatch string) error {
	unlock := s.lockRegistration(key(id))
	defer unlock()
	return s.db.Update(func(tx *store.Tx) error {
		var reg registration
		ok, err := load(tx, store.DPSRegistrations, id, &reg)
		if err != nil {
			return err
		}
		if !ok {
			return RegistrationNotFound(id)
		}
		if !matchETag(ifMatch, reg.State.ETag) {
			return PreconditionFailed("The etag %s does not match registration %s's etag.", ifMatch, id)
		}
		return tx.Delete(store.DPSRegistrations, key(id))
	})
}

// load reads the record at id into v and reports whether it exists.
func load(tx *store.Tx, b store.Bucket, id string, v any) (bool, error) {
	raw := tx.Get(b, key(id))
	if raw == nil {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

func save(tx *store.Tx, b store.Bucket, id string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(b, key(id), raw)
}
