// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/base64"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// regOwnerKey is the iothubowner key of the registry tests' hubs.
var regOwnerKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// regNow is the registry tests' fixed clock.
var regNow = time.Date(2024, 5, 2, 9, 0, 0, 0, time.UTC)

// newRegHub returns a hub over a temporary store with the default
// policies and a clock fixed at regNow.
func newRegHub(t *testing.T) *Hub {
	t.Helper()
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h, err := New(db, Config{HostName: "myhub.example", Policies: DefaultPolicies(regOwnerKey),
		Clock: clock.At(regNow)})
	if err != nil {
		db.Close()
		t.Fatalf("new hub: %v", err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return h
}

// regDevice creates a SAS device with generated keys.
func regDevice(t *testing.T, h *Hub, d Device) *Device {
	t.Helper()
	out, err := h.PutDevice(context.Background(), &d, "")
	if err != nil {
		t.Fatalf("create %s: %v", d.DeviceID, err)
	}
	return out
}

// regSession is a session that only records being closed.
type regSession struct{ closed atomic.Bool }

func (s *regSession) SendMethod(string, string, []byte) error { return nil }
func (s *regSession) SendDesired(int64, []byte) error         { return nil }
func (s *regSession) Close()                                  { s.closed.Store(true) }

// wantCode fails unless err is the catalogue error with that code.
func wantCode(t *testing.T, what string, err error, code int) {
	t.Helper()
	var he *huberr.Error
	if !errors.As(err, &he) {
		t.Fatalf("%s: got error %v, want code %d", what, err, code)
	}
	if he.Code != code {
		t.Fatalf("%s: got code %d (%v), want %d", what, he.Code, err, code)
	}
}

func TestMatchETag(t *testing.T) {
	const cur = "MQ=="
	tests := []struct {
		name    string
		ifMatch string
		want    bool
	}{
		{"absent", "", true},
		{"star", "*", true},
		{"quoted star", `"*"`, true},
		{"bare etag", "MQ==", true},
		{"quoted etag", `"MQ=="`, true},
		{"weak etag", `W/"MQ=="`, true},
		{"surrounding spaces", `  "MQ=="  `, true},
		{"other etag", `"Mg=="`, false},
		{"prefix of etag", `"MQ"`, false},
		{"case differs", `"mq=="`, false},
		{"empty quotes", `""`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchETag(tc.ifMatch, cur); got != tc.want {
				t.Errorf("matchETag(%q, %q) = %v, want %v", tc.ifMatch, cur, got, tc.want)
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	db, err := store.OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	good := DefaultPolicies(regOwnerKey)
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"ok", Config{HostName: "h", Policies: good}, false},
		{"no host name", Config{Policies: good}, true},
		{"no policies", Config{HostName: "h"}, true},
		{"bad primary key", Config{HostName: "h", Policies: []Policy{{Name: "p", PrimaryKey: "not base64", Rights: AllRights}}}, true},
		{"short secondary key", Config{HostName: "h", Policies: []Policy{{Name: "p", PrimaryKey: regOwnerKey, SecondaryKey: "c2hvcnQ=", Rights: AllRights}}}, true},
		{"no secondary key", Config{HostName: "h", Policies: []Policy{{Name: "p", PrimaryKey: regOwnerKey, Rights: AllRights}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(db, tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New: got error %v, want error %v", err, tc.wantErr)
			}
			if h != nil {
				h.Close()
			}
		})
	}
}

func TestDeviceETagsAndGenerations(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	d := regDevice(t, h, Device{DeviceID: "d1"})
	if d.ETag != "MQ==" {
		t.Errorf("got first etag %q, want MQ== (base64 of \"1\")", d.ETag)
	}
	upd, err := h.PutDevice(ctx, &Device{DeviceID: "d1", Status: StatusDisabled}, `"MQ=="`)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if upd.ETag != "Mg==" || upd.GenerationID != d.GenerationID {
		t.Errorf("got etag %q generation %q after update, want Mg== and %q", upd.ETag, upd.GenerationID, d.GenerationID)
	}
	if !upd.StatusUpdatedTime.Equal(regNow) {
		t.Errorf("got statusUpdatedTime %v, want %v", upd.StatusUpdatedTime.Time, regNow)
	}
	if upd.StatusReason != nil {
		t.Errorf("got statusReason %q, want null", *upd.StatusReason)
	}
	_, err = h.PutDevice(ctx, &Device{DeviceID: "d1"}, `"MQ=="`)
	wantCode(t, "stale update", err, 412001)
	_, err = h.PutDevice(ctx, &Device{DeviceID: "d1"}, "")
	wantCode(t, "second create", err, 409001)
	_, err = h.PutDevice(ctx, &Device{DeviceID: "nope"}, "*")
	wantCode(t, "update missing", err, 404001)
	wantCode(t, "get missing", func() error { _, err := h.GetDevice(ctx, "nope"); return err }(), 404001)
	wantCode(t, "stale delete", h.DeleteDevice(ctx, "d1", `"MQ=="`), 412001)
	if err := h.DeleteDevice(ctx, "d1", `"Mg=="`); err != nil {
		t.Fatalf("delete: %v", err)
	}
	again := regDevice(t, h, Device{DeviceID: "d1"})
	if again.GenerationID == d.GenerationID || again.ETag != "MQ==" {
		t.Errorf("got generation %q etag %q after re-create, want a new generation and MQ==", again.GenerationID, again.ETag)
	}
}

func TestStatusChangesCloseConnections(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d1"})
	if _, err := h.PutModule(ctx, &Module{DeviceID: "d1", ModuleID: "m1"}, ""); err != nil {
		t.Fatal(err)
	}
	dev, mod := &regSession{}, &regSession{}
	h.Connect(Identity{DeviceID: "d1"}, dev, ConnectInfo{})
	h.Connect(Identity{DeviceID: "d1", ModuleID: "m1"}, mod, ConnectInfo{})

	// An update that keeps the device enabled leaves the sessions alone.
	if _, err := h.PutDevice(ctx, &Device{DeviceID: "d1"}, "*"); err != nil {
		t.Fatal(err)
	}
	if dev.closed.Load() || mod.closed.Load() {
		t.Fatalf("an update that kept the device enabled closed its sessions")
	}
	if _, err := h.PutDevice(ctx, &Device{DeviceID: "d1", Status: StatusDisabled}, "*"); err != nil {
		t.Fatal(err)
	}
	if !dev.closed.Load() || !mod.closed.Load() {
		t.Errorf("got device closed %v, module closed %v after disable, want both closed", dev.closed.Load(), mod.closed.Load())
	}
}

func TestDeleteDeviceRemovesEverything(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d1"})
	regDevice(t, h, Device{DeviceID: "d10"}) // shares the prefix "d1"
	for _, id := range []string{"d1", "d10"} {
		if _, err := h.PutModule(ctx, &Module{DeviceID: id, ModuleID: "m1"}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := h.SendC2D(ctx, id, &C2DMessage{Body: []byte("hi")}, time.Hour); err != nil {
			t.Fatalf("send C2D to %s: %v", id, err)
		}
	}
	s := &regSession{}
	h.Connect(Identity{DeviceID: "d1", ModuleID: "m1"}, s, ConnectInfo{})

	if err := h.DeleteDevice(ctx, "d1", ""); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if !s.closed.Load() {
		t.Errorf("the module's session stayed open after its device was deleted")
	}
	regDevice(t, h, Device{DeviceID: "d1"})
	ms, err := h.ListModules(ctx, "d1")
	if err != nil || len(ms) != 0 {
		t.Errorf("got modules %v, %v after re-create, want none", ms, err)
	}
	if q, err := h.PendingC2D("d1"); err != nil || len(q) != 0 {
		t.Errorf("got C2D queue %v, %v after re-create, want empty", q, err)
	}
	// The device with the longer id kept everything.
	if ms, err := h.ListModules(ctx, "d10"); err != nil || len(ms) != 1 {
		t.Errorf("got d10 modules %v, %v, want one", ms, err)
	}
	if q, err := h.PendingC2D("d10"); err != nil || len(q) != 1 {
		t.Errorf("got d10 C2D queue %v, %v, want one message", q, err)
	}
}

func TestApplyScopes(t *testing.T) {
	tests := []struct {
		name        string
		in          Device
		wantScope   string
		wantParents []string
		wantErr     bool
	}{
		{name: "plain device", in: Device{DeviceID: "d"}},
		{name: "edge device owns its scope", in: Device{DeviceID: "e", GenerationID: "7", Capabilities: Capabilities{IotEdge: true}, DeviceScope: "ignored"},
			wantScope: "ms-azure-iot-edge://e-7"},
		{name: "nested edge", in: Device{DeviceID: "e", GenerationID: "7", Capabilities: Capabilities{IotEdge: true}, ParentScopes: []string{"ms-azure-iot-edge://p-1"}},
			wantScope: "ms-azure-iot-edge://e-7", wantParents: []string{"ms-azure-iot-edge://p-1"}},
		{name: "edge with two parents", in: Device{DeviceID: "e", GenerationID: "7", Capabilities: Capabilities{IotEdge: true}, ParentScopes: []string{"a", "b"}}, wantErr: true},
		{name: "edge its own parent", in: Device{DeviceID: "e", GenerationID: "7", Capabilities: Capabilities{IotEdge: true}, ParentScopes: []string{"ms-azure-iot-edge://e-7"}}, wantErr: true},
		{name: "leaf gets parentScopes", in: Device{DeviceID: "l", DeviceScope: "ms-azure-iot-edge://p-1"},
			wantScope: "ms-azure-iot-edge://p-1", wantParents: []string{"ms-azure-iot-edge://p-1"}},
		{name: "given parentScopes are kept", in: Device{DeviceID: "l", DeviceScope: "someScope", ParentScopes: []string{"someParentScope"}},
			wantScope: "someScope", wantParents: []string{"someParentScope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.in
			err := applyScopes(&d)
			if tc.wantErr {
				wantCode(t, "applyScopes", err, 400004)
				return
			}
			if err != nil {
				t.Fatalf("applyScopes: %v", err)
			}
			if d.DeviceScope != tc.wantScope {
				t.Errorf("got deviceScope %q, want %q", d.DeviceScope, tc.wantScope)
			}
			if diff := cmp.Diff(tc.wantParents, d.ParentScopes); diff != "" {
				t.Errorf("parentScopes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewAuthentication(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	str := func(s string) *string { return &s }
	tests := []struct {
		name     string
		in       Authentication
		prev     *Authentication
		wantType string
		wantErr  bool
	}{
		{name: "zero value is sas", wantType: AuthSAS},
		{name: "keys without type", in: Authentication{SymmetricKey: &SymmetricKey{PrimaryKey: k16, SecondaryKey: k16}}, wantType: AuthSAS},
		{name: "update keeps previous type", prev: &Authentication{Type: AuthCA}, wantType: AuthCA},
		{name: "lower-case thumbprint", in: Authentication{Type: AuthSelfSigned, X509Thumbprint: &X509Thumbprint{PrimaryThumbprint: str("aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd")}}, wantType: AuthSelfSigned},
		{name: "SHA-256 thumbprint", in: Authentication{Type: AuthSelfSigned, X509Thumbprint: &X509Thumbprint{PrimaryThumbprint: str(string(make64hex()))}}, wantType: AuthSelfSigned},
		{name: "selfSigned without block", in: Authentication{Type: AuthSelfSigned}, wantErr: true},
		{name: "none", in: Authentication{Type: AuthNone}, wantType: AuthNone},
		{name: "unknown", in: Authentication{Type: "magic"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newAuthentication(tc.in, tc.prev)
			if tc.wantErr {
				wantCode(t, "newAuthentication", err, 400004)
				return
			}
			if err != nil {
				t.Fatalf("newAuthentication: %v", err)
			}
			if got.Type != tc.wantType || got.SymmetricKey == nil || got.X509Thumbprint == nil {
				t.Errorf("got %+v, want type %s with both blocks present", got, tc.wantType)
			}
		})
	}
}

func make64hex() []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = "0123456789abcdef"[i%16]
	}
	return b
}

// TestDisablingUnregistersAtOnce: when the hub ends a connection itself,
// the registry stops showing it connected before the transport has
// finished closing (the session's Close here never reports back).
func TestDisablingUnregistersAtOnce(t *testing.T) {
	h := newRegHub(t)
	d := regDevice(t, h, Device{DeviceID: "off"})
	s := &methodSession{}
	h.Connect(Identity{DeviceID: "off"}, s, ConnectInfo{AuthMethod: "sas"})
	d.Status = StatusDisabled
	if _, err := h.PutDevice(context.Background(), d, "*"); err != nil {
		t.Fatal(err)
	}
	if h.IsConnected(Identity{DeviceID: "off"}) {
		t.Fatal("a disabled device still shows connected")
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		t.Fatal("the disabled device's session was not closed")
	}
	if got, _ := h.GetDevice(context.Background(), "off"); got.ConnectionState != Disconnected || got.ConnectionStateUpdatedTime.IsZero() {
		t.Fatalf("registry after disabling: %s at %v", got.ConnectionState, got.ConnectionStateUpdatedTime)
	}
}
