// SPDX-License-Identifier: MIT

package emulator

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/dps"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Config declares shared access policies, device certificate authorities
// and pre-registered devices, and the Device Provisioning Service's
// policies and enrollments. It is read from the JSON file named by
// --config; the README documents the schema and testdata/config.json is an
// example.
type Config struct {
	Policies               []PolicyConfig    `json:"policies"`
	CertificateAuthorities []string          `json:"certificateAuthorities"` // PEM files of CAs for certificateAuthority devices
	Devices                []DeviceConfig    `json:"devices"`
	FileUpload             *FileUploadConfig `json:"fileUpload,omitempty"` // the hub's file-upload setting; flags win over it

	ProvisioningPolicies []PolicyConfig          `json:"provisioningPolicies,omitempty"` // rights: ServiceConfig, EnrollmentRead, EnrollmentWrite, DeviceConnect, RegistrationStatusRead, RegistrationStatusWrite
	Enrollments          []EnrollmentConfig      `json:"enrollments,omitempty"`
	EnrollmentGroups     []EnrollmentGroupConfig `json:"enrollmentGroups,omitempty"`

	dir string // the config file's directory: relative paths are resolved against it
}

// PolicyConfig declares a shared access policy. A policy with the name of a
// default policy replaces it.
type PolicyConfig struct {
	Name         string   `json:"name"`
	PrimaryKey   string   `json:"primaryKey"`
	SecondaryKey string   `json:"secondaryKey"`
	Rights       []string `json:"rights"` // RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect
}

// DeviceConfig declares a device registered at start if it does not exist.
type DeviceConfig struct {
	DeviceID             string          `json:"deviceId"`
	PrimaryKey           string          `json:"primaryKey,omitempty"`           // SAS keys; generated when empty
	SecondaryKey         string          `json:"secondaryKey,omitempty"`         //
	PrimaryThumbprint    string          `json:"primaryThumbprint,omitempty"`    // X.509 self-signed
	SecondaryThumbprint  string          `json:"secondaryThumbprint,omitempty"`  //
	CertificateAuthority bool            `json:"certificateAuthority,omitempty"` // X.509 signed by a configured CA
	Status               string          `json:"status,omitempty"`               // enabled (default) or disabled
	IotEdge              bool            `json:"iotEdge,omitempty"`
	Tags                 json.RawMessage `json:"tags,omitempty"`
	Desired              json.RawMessage `json:"desired,omitempty"`
	Modules              []ModuleConfig  `json:"modules,omitempty"`
}

// FileUploadConfig is the file-upload setting in a config file. Each field
// applies when the matching option (flag, environment) is not set.
type FileUploadConfig struct {
	StorageConnectionString string `json:"storageConnectionString"`
	StorageCAFile           string `json:"storageCaFile,omitempty"` // relative to the config file
	ContainerName           string `json:"containerName,omitempty"`
	SASTTL                  string `json:"sasTtl,omitempty"`        // a Go duration, e.g. "1h"
	Notifications           *bool  `json:"notifications,omitempty"` // default true
}

// applyFileUpload fills the file-upload options a flag left empty.
func (c *Config) applyFileUpload(o *Options) error {
	if c == nil || c.FileUpload == nil {
		return nil
	}
	f := c.FileUpload
	if o.StorageConnectionString == "" {
		o.StorageConnectionString = f.StorageConnectionString
	}
	if o.StorageCAFile == "" && f.StorageCAFile != "" {
		o.StorageCAFile = f.StorageCAFile
		if !filepath.IsAbs(o.StorageCAFile) {
			o.StorageCAFile = filepath.Join(c.dir, o.StorageCAFile)
		}
	}
	if o.FileUploadContainer == "" {
		o.FileUploadContainer = f.ContainerName
	}
	if o.FileUploadSASTTL == 0 && f.SASTTL != "" {
		d, err := time.ParseDuration(f.SASTTL)
		if err != nil {
			return fmt.Errorf("config: fileUpload.sasTtl %q: %v", f.SASTTL, err)
		}
		o.FileUploadSASTTL = d
	}
	if f.Notifications != nil && !*f.Notifications {
		o.DisableFileUploadNotifications = true
	}
	return nil
}

// ModuleConfig declares a module of a pre-registered device.
type ModuleConfig struct {
	ModuleID     string `json:"moduleId"`
	PrimaryKey   string `json:"primaryKey,omitempty"`
	SecondaryKey string `json:"secondaryKey,omitempty"`
}

// EnrollmentConfig declares an individual enrollment of the provisioning
// service, created at start if it does not exist. It attests with a
// symmetric key (generated when empty) or, with CertificateFile, with the
// device's X.509 certificate.
type EnrollmentConfig struct {
	RegistrationID          string          `json:"registrationId"`
	DeviceID                string          `json:"deviceId,omitempty"`        // the hub device id; default the registration id
	PrimaryKey              string          `json:"primaryKey,omitempty"`      // symmetric key (base64)
	SecondaryKey            string          `json:"secondaryKey,omitempty"`    //
	CertificateFile         string          `json:"certificateFile,omitempty"` // X.509: the device's certificate (PEM)
	Status                  string          `json:"status,omitempty"`          // enabled (default) or disabled
	IotEdge                 bool            `json:"iotEdge,omitempty"`
	Tags                    json.RawMessage `json:"tags,omitempty"`    // initial twin tags
	Desired                 json.RawMessage `json:"desired,omitempty"` // initial desired properties
	CustomAllocationWebhook string          `json:"customAllocationWebhook,omitempty"`
}

// EnrollmentGroupConfig declares an enrollment group: devices attest with
// a key derived from the group key per registration id, or, with
// CertificateFile, with a certificate chaining to the group's CA.
type EnrollmentGroupConfig struct {
	EnrollmentGroupID       string          `json:"enrollmentGroupId"`
	PrimaryKey              string          `json:"primaryKey,omitempty"`
	SecondaryKey            string          `json:"secondaryKey,omitempty"`
	CertificateFile         string          `json:"certificateFile,omitempty"` // X.509: the group's CA certificate (PEM)
	Status                  string          `json:"status,omitempty"`
	IotEdge                 bool            `json:"iotEdge,omitempty"`
	Tags                    json.RawMessage `json:"tags,omitempty"`
	Desired                 json.RawMessage `json:"desired,omitempty"`
	CustomAllocationWebhook string          `json:"customAllocationWebhook,omitempty"`
}

// LoadConfigFile reads and checks a config file. Errors name the file and
// the problem.
func LoadConfigFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) check() error {
	seen := map[string]bool{}
	for i, p := range c.Policies {
		if p.Name == "" {
			return fmt.Errorf("policies[%d]: name is required", i)
		}
		if len(p.Rights) == 0 {
			return fmt.Errorf("policy %s: rights are required", p.Name)
		}
		for _, r := range p.Rights {
			if _, err := hub.ParseRights(r); err != nil {
				return fmt.Errorf("policy %s: %w", p.Name, err)
			}
		}
	}
	for i, d := range c.Devices {
		if err := hub.ValidateDeviceID(d.DeviceID); err != nil {
			return fmt.Errorf("devices[%d]: %s", i, huberr.As(err).Message)
		}
		if seen[d.DeviceID] {
			return fmt.Errorf("device %s is declared twice", d.DeviceID)
		}
		seen[d.DeviceID] = true
	}
	for i, p := range c.ProvisioningPolicies {
		if p.Name == "" {
			return fmt.Errorf("provisioningPolicies[%d]: name is required", i)
		}
		if len(p.Rights) == 0 {
			return fmt.Errorf("provisioning policy %s: rights are required", p.Name)
		}
		for _, r := range p.Rights {
			if _, err := dps.ParseRights(r); err != nil {
				return fmt.Errorf("provisioning policy %s: %v", p.Name, err)
			}
		}
	}
	seen = map[string]bool{}
	for i, e := range c.Enrollments {
		if err := dps.ValidateID("registration id", e.RegistrationID); err != nil {
			return fmt.Errorf("enrollments[%d]: %s", i, dps.AsError(err).Message)
		}
		if seen[strings.ToLower(e.RegistrationID)] {
			return fmt.Errorf("enrollment %s is declared twice", e.RegistrationID)
		}
		seen[strings.ToLower(e.RegistrationID)] = true
	}
	seen = map[string]bool{}
	for i, g := range c.EnrollmentGroups {
		if err := dps.ValidateID("enrollment group id", g.EnrollmentGroupID); err != nil {
			return fmt.Errorf("enrollmentGroups[%d]: %s", i, dps.AsError(err).Message)
		}
		if seen[strings.ToLower(g.EnrollmentGroupID)] {
			return fmt.Errorf("enrollment group %s is declared twice", g.EnrollmentGroupID)
		}
		seen[strings.ToLower(g.EnrollmentGroupID)] = true
	}
	return nil
}

// provisioningPolicies merges the config's provisioning policies over the
// default owner policy.
func (c *Config) provisioningPolicies(ownerKey string) ([]dps.Policy, error) {
	out := dps.DefaultPolicies(ownerKey)
	if c == nil {
		return out, nil
	}
	for _, pc := range c.ProvisioningPolicies {
		p := dps.Policy{Name: pc.Name, PrimaryKey: pc.PrimaryKey, SecondaryKey: pc.SecondaryKey}
		for _, r := range pc.Rights {
			v, err := dps.ParseRights(r)
			if err != nil {
				return nil, err
			}
			p.Rights |= v
		}
		replaced := false
		for i := range out {
			if out[i].Name == p.Name {
				out[i], replaced = p, true
			}
		}
		if !replaced {
			out = append(out, p)
		}
	}
	return out, nil
}

// readPEM reads a PEM file named in the config, relative to its directory.
func (c *Config) readPEM(f string) (string, error) {
	if !filepath.IsAbs(f) && c.dir != "" {
		f = filepath.Join(c.dir, f)
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// provisioningSettings turns the shared config fields into the service's.
func provisioningSettings(primary, secondary, certFile string, iotEdge bool, tags, desired json.RawMessage, webhook string,
	readPEM func(string) (string, error), group bool) (a dps.AttestationMechanism, caps *dps.DeviceCapabilities, t *dps.InitialTwin, alloc string, custom *dps.CustomAllocationDefinition, err error) {
	if certFile != "" {
		pemText, err := readPEM(certFile)
		if err != nil {
			return a, nil, nil, "", nil, fmt.Errorf("certificate: %w", err)
		}
		slot := &dps.X509CertificateWithInfo{Certificate: pemText}
		a = dps.AttestationMechanism{Type: dps.AttestationX509, X509: &dps.X509Attestation{}}
		if group {
			a.X509.SigningCertificates = &dps.X509Certificates{Primary: slot}
		} else {
			a.X509.ClientCertificates = &dps.X509Certificates{Primary: slot}
		}
	} else {
		a = dps.AttestationMechanism{Type: dps.AttestationSymmetricKey, SymmetricKey: &dps.SymmetricKeyAttestation{PrimaryKey: primary, SecondaryKey: secondary}}
	}
	if len(tags) > 0 || len(desired) > 0 {
		t = &dps.InitialTwin{Tags: tags}
		if len(desired) > 0 {
			t.Properties = &dps.InitialTwinProperties{Desired: desired}
		}
	}
	if webhook != "" {
		alloc, custom = dps.AllocCustom, &dps.CustomAllocationDefinition{WebhookURL: webhook, APIVersion: "2019-03-31"}
	}
	return a, &dps.DeviceCapabilities{IotEdge: iotEdge}, t, alloc, custom, nil
}

// applyProvisioning creates the declared enrollments and groups that do
// not exist yet; existing ones, changed through the service API or not,
// are left as they are, so a restart keeps state.
func (c *Config) applyProvisioning(s *dps.Service) error {
	if c == nil {
		return nil
	}
	for _, ec := range c.Enrollments {
		a, caps, t, alloc, custom, err := provisioningSettings(ec.PrimaryKey, ec.SecondaryKey, ec.CertificateFile, ec.IotEdge,
			ec.Tags, ec.Desired, ec.CustomAllocationWebhook, c.readPEM, false)
		if err != nil {
			return fmt.Errorf("enrollment %s: %v", ec.RegistrationID, err)
		}
		e := &dps.IndividualEnrollment{RegistrationID: ec.RegistrationID, DeviceID: ec.DeviceID, Attestation: a, Capabilities: caps,
			InitialTwin: t, ProvisioningStatus: ec.Status, AllocationPolicy: alloc, CustomAllocationDefinition: custom}
		if _, err := s.CreateEnrollment(e); err != nil && !errors.Is(err, dps.Conflict("")) {
			return fmt.Errorf("enrollment %s: %s", ec.RegistrationID, dps.AsError(err).Message)
		}
	}
	for _, gc := range c.EnrollmentGroups {
		a, caps, t, alloc, custom, err := provisioningSettings(gc.PrimaryKey, gc.SecondaryKey, gc.CertificateFile, gc.IotEdge,
			gc.Tags, gc.Desired, gc.CustomAllocationWebhook, c.readPEM, true)
		if err != nil {
			return fmt.Errorf("enrollment group %s: %v", gc.EnrollmentGroupID, err)
		}
		g := &dps.EnrollmentGroup{EnrollmentGroupID: gc.EnrollmentGroupID, Attestation: a, Capabilities: caps,
			InitialTwin: t, ProvisioningStatus: gc.Status, AllocationPolicy: alloc, CustomAllocationDefinition: custom}
		if _, err := s.CreateGroup(g); err != nil && !errors.Is(err, dps.Conflict("")) {
			return fmt.Errorf("enrollment group %s: %s", gc.EnrollmentGroupID, dps.AsError(err).Message)
		}
	}
	return nil
}

// policies merges the config's policies over the defaults.
func (c *Config) policies(ownerKey string) ([]hub.Policy, error) {
	out := hub.DefaultPolicies(ownerKey)
	if c == nil {
		return out, nil
	}
	for _, pc := range c.Policies {
		p := hub.Policy{Name: pc.Name, PrimaryKey: pc.PrimaryKey, SecondaryKey: pc.SecondaryKey}
		for _, r := range pc.Rights {
			v, err := hub.ParseRights(r)
			if err != nil {
				return nil, err
			}
			p.Rights |= v
		}
		replaced := false
		for i := range out {
			if out[i].Name == p.Name {
				out[i], replaced = p, true
			}
		}
		if !replaced {
			out = append(out, p)
		}
	}
	return out, nil
}

// deviceCAs loads the configured certificate authorities.
func (c *Config) deviceCAs() (*x509.CertPool, error) {
	if c == nil || len(c.CertificateAuthorities) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	for _, f := range c.CertificateAuthorities {
		if !filepath.IsAbs(f) && c.dir != "" {
			f = filepath.Join(c.dir, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("certificate authority: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("certificate authority %s: no PEM certificate found", f)
		}
	}
	return pool, nil
}

// apply registers the declared devices that do not exist yet; existing
// devices (and their twins) are left as they are, so a restart keeps state.
func (c *Config) apply(ctx context.Context, h *hub.Hub) error {
	if c == nil {
		return nil
	}
	for _, dc := range c.Devices {
		if _, err := h.GetDevice(ctx, dc.DeviceID); err == nil {
			continue
		} else if !errors.Is(err, huberr.DeviceNotFound("")) {
			return err
		}
		d := &hub.Device{DeviceID: dc.DeviceID, Status: dc.Status, Capabilities: hub.Capabilities{IotEdge: dc.IotEdge}}
		switch {
		case dc.PrimaryThumbprint != "":
			p, s := dc.PrimaryThumbprint, dc.SecondaryThumbprint
			t := &hub.X509Thumbprint{PrimaryThumbprint: &p}
			if s != "" {
				t.SecondaryThumbprint = &s
			}
			d.Authentication = hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: t}
		case dc.CertificateAuthority:
			d.Authentication = hub.Authentication{Type: hub.AuthCA}
		default:
			d.Authentication = hub.Authentication{Type: hub.AuthSAS,
				SymmetricKey: &hub.SymmetricKey{PrimaryKey: dc.PrimaryKey, SecondaryKey: dc.SecondaryKey}}
		}
		if _, err := h.PutDevice(ctx, d, ""); err != nil {
			return fmt.Errorf("device %s: %s", dc.DeviceID, huberr.As(err).Message)
		}
		if len(dc.Tags) > 0 || len(dc.Desired) > 0 {
			patch := map[string]json.RawMessage{}
			if len(dc.Tags) > 0 {
				patch["tags"] = dc.Tags
			}
			if len(dc.Desired) > 0 {
				patch["properties"] = json.RawMessage(`{"desired":` + string(dc.Desired) + `}`)
			}
			b, _ := json.Marshal(patch)
			if _, err := h.UpdateTwin(ctx, hub.Identity{DeviceID: dc.DeviceID}, b, "", false); err != nil {
				return fmt.Errorf("device %s twin: %s", dc.DeviceID, huberr.As(err).Message)
			}
		}
		for _, mc := range dc.Modules {
			m := &hub.Module{DeviceID: dc.DeviceID, ModuleID: mc.ModuleID, Authentication: hub.Authentication{Type: hub.AuthSAS,
				SymmetricKey: &hub.SymmetricKey{PrimaryKey: mc.PrimaryKey, SecondaryKey: mc.SecondaryKey}}}
			if _, err := h.PutModule(ctx, m, ""); err != nil {
				return fmt.Errorf("module %s/%s: %s", dc.DeviceID, mc.ModuleID, huberr.As(err).Message)
			}
		}
	}
	return nil
}
