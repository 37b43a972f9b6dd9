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
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Config declares shared access policies, device certificate authorities
// and pre-registered devices. It is read from the JSON file named by
// --config; the README documents the schema and testdata/config.json is an
// example.
type Config struct {
	Policies               []PolicyConfig    `json:"policies"`
	CertificateAuthorities []string          `json:"certificateAuthorities"` // PEM files of CAs for certificateAuthority devices
	Devices                []DeviceConfig    `json:"devices"`
	FileUpload             *FileUploadConfig `json:"fileUpload,omitempty"` // the hub's file-upload setting; flags win over it

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
