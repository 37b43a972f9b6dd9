// SPDX-License-Identifier: MIT

package service

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTwinCollection(t *testing.T) {
	c, err := NewTwinCollection(map[string]any{"fanSpeed": 4, "schedule": nil})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(c), `{"fanSpeed":4,"schedule":null}`; got != want {
		t.Errorf("NewTwinCollection = %s, want %s", got, want)
	}
	if _, err := NewTwinCollection([]int{1}); err == nil {
		t.Errorf("NewTwinCollection(array) succeeded, want an error")
	}
	raw, ok := c.Get("fanSpeed")
	if !ok || string(raw) != "4" {
		t.Errorf("Get(fanSpeed) = %s %v, want 4 true", raw, ok)
	}
	if _, ok := c.Get("missing"); ok {
		t.Errorf("Get(missing) found something")
	}
	var empty TwinCollection
	m, err := empty.Map()
	if err != nil || len(m) != 0 {
		t.Errorf("empty Map = %v, %v; want empty map", m, err)
	}
	if empty.Version() != 0 {
		t.Errorf("empty Version = %d, want 0", empty.Version())
	}
}

func TestTwinJSONRoundTrip(t *testing.T) {
	var tw Twin
	if err := json.Unmarshal([]byte(twinJSON), &tw); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(&tw)
	if err != nil {
		t.Fatal(err)
	}
	// modelId "" and null thumbprints are omitted on the way out; all
	// else, including $metadata, survives byte for byte in meaning.
	var in, back map[string]any
	json.Unmarshal([]byte(twinJSON), &in)
	json.Unmarshal(out, &back)
	delete(in, "modelId")
	delete(in, "cloudToDeviceMessageCount")
	in["x509Thumbprint"] = map[string]any{}
	in["capabilities"] = map[string]any{"iotEdge": false}
	delete(in, "statusUpdateTime")
	if diff := cmp.Diff(in, back); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	var nulls Twin
	if err := json.Unmarshal([]byte(`{"tags":null,"properties":{"desired":null}}`), &nulls); err != nil {
		t.Fatal(err)
	}
	if nulls.Tags != nil || nulls.Properties.Desired != nil {
		t.Errorf("null sections decoded to %q %q, want empty", nulls.Tags, nulls.Properties.Desired)
	}
}

func TestNormalizeAuth(t *testing.T) {
	tests := []struct {
		name string
		in   *AuthenticationMechanism
		want *AuthenticationMechanism
	}{
		{"nil", nil, SASAuth("", "")},
		{"type only sas", &AuthenticationMechanism{Type: AuthSAS}, SASAuth("", "")},
		{"keys without type", &AuthenticationMechanism{SymmetricKey: &SymmetricKey{PrimaryKey: "a"}},
			&AuthenticationMechanism{Type: AuthSAS, SymmetricKey: &SymmetricKey{PrimaryKey: "a"}}},
		{"thumbprint without type", &AuthenticationMechanism{X509Thumbprint: &X509Thumbprint{SecondaryThumbprint: "t"}},
			&AuthenticationMechanism{Type: AuthSelfSigned, X509Thumbprint: &X509Thumbprint{SecondaryThumbprint: "t"}}},
		{"empty thumbprints mean sas", &AuthenticationMechanism{X509Thumbprint: &X509Thumbprint{}},
			&AuthenticationMechanism{Type: AuthSAS, SymmetricKey: &SymmetricKey{}, X509Thumbprint: &X509Thumbprint{}}},
		{"CA untouched", CAAuth(), CAAuth()},
		{"none untouched", &AuthenticationMechanism{Type: AuthNone}, &AuthenticationMechanism{Type: AuthNone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, normalizeAuth(tt.in)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConnectionStrings(t *testing.T) {
	tests := []struct {
		name    string
		d       *Device
		m       *Module
		want    string
		wantErr bool
	}{
		{name: "sas device", d: &Device{DeviceID: "dev1", Authentication: SASAuth("cGs=", "c2s=")},
			want: "HostName=hub:8443;DeviceId=dev1;SharedAccessKey=cGs="},
		{name: "x509 device", d: &Device{DeviceID: "dev1", Authentication: X509Auth("AB", "")},
			want: "HostName=hub:8443;DeviceId=dev1;x509=true"},
		{name: "CA device", d: &Device{DeviceID: "dev1", Authentication: CAAuth()},
			want: "HostName=hub:8443;DeviceId=dev1;x509=true"},
		{name: "sas module", m: &Module{DeviceID: "dev1", ModuleID: "m1", Authentication: SASAuth("cGs=", "")},
			want: "HostName=hub:8443;DeviceId=dev1;ModuleId=m1;SharedAccessKey=cGs="},
		{name: "no keys yet", d: &Device{DeviceID: "dev1", Authentication: SASAuth("", "")}, wantErr: true},
		{name: "no authentication", d: &Device{DeviceID: "dev1"}, wantErr: true},
		{name: "no id", d: &Device{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			var err error
			if tt.m != nil {
				got, err = ModuleConnectionString("hub:8443", tt.m)
			} else {
				got, err = DeviceConnectionString("hub:8443", tt.d)
			}
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
