// SPDX-License-Identifier: MIT

package sas

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const csKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     ConnectionString
		wantKind Kind
		wantStr  string // String() output; "" means same as in
	}{
		{
			name:     "device",
			in:       "HostName=h.net;DeviceId=dev1;SharedAccessKey=" + csKey,
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", SharedAccessKey: csKey},
			wantKind: KindDevice,
		},
		{
			name:     "module",
			in:       "HostName=h.net;DeviceId=dev1;ModuleId=mod1;SharedAccessKey=" + csKey,
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", ModuleID: "mod1", SharedAccessKey: csKey},
			wantKind: KindModule,
		},
		{
			name:     "service",
			in:       "HostName=h.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + csKey,
			want:     ConnectionString{HostName: "h.net", SharedAccessKeyName: "iothubowner", SharedAccessKey: csKey},
			wantKind: KindService,
		},
		{
			name:     "service with token",
			in:       "HostName=h.net;SharedAccessKeyName=iothubowner;SharedAccessSignature=" + vectorService,
			want:     ConnectionString{HostName: "h.net", SharedAccessKeyName: "iothubowner", SharedAccessSignature: vectorService},
			wantKind: KindService,
		},
		{
			name:     "gateway",
			in:       "HostName=h.net;DeviceId=dev1;SharedAccessKey=" + csKey + ";GatewayHostName=edge.local",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", SharedAccessKey: csKey, GatewayHostName: "edge.local"},
			wantKind: KindDevice,
		},
		{
			name:     "x509",
			in:       "HostName=h.net;DeviceId=dev1;x509=true",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", X509: true},
			wantKind: KindDevice,
		},
		{
			name:     "x509 upper case value",
			in:       "HostName=h.net;DeviceId=dev1;x509=True",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", X509: true},
			wantKind: KindDevice,
			wantStr:  "HostName=h.net;DeviceId=dev1;x509=true",
		},
		{
			name:     "x509 false with key",
			in:       "HostName=h.net;DeviceId=dev1;SharedAccessKey=k;x509=false",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", SharedAccessKey: "k"},
			wantKind: KindDevice,
			wantStr:  "HostName=h.net;DeviceId=dev1;SharedAccessKey=k",
		},
		{
			name:     "device token with = and & inside",
			in:       "HostName=h.net;DeviceId=dev1;SharedAccessSignature=" + vectorDevice,
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", SharedAccessSignature: vectorDevice},
			wantKind: KindDevice,
		},
		{
			name:     "hub-policy device string",
			in:       "HostName=h.net;DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey=k",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", SharedAccessKeyName: "device", SharedAccessKey: "k"},
			wantKind: KindDevice,
		},
		{
			name:     "any order, unknown names, empty and odd items",
			in:       ";SharedAccessKey=" + csKey + ";;Foo=bar;noequals;=v;DeviceId=;DeviceId=dev1;HostName=h.net;",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", SharedAccessKey: csKey},
			wantKind: KindDevice,
			wantStr:  "HostName=h.net;DeviceId=dev1;SharedAccessKey=" + csKey,
		},
		{
			name:     "names case-insensitive",
			in:       "hostname=h.net;DEVICEID=dev1;sharedaccesskey=k;X509=false",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1", SharedAccessKey: "k"},
			wantKind: KindDevice,
			wantStr:  "HostName=h.net;DeviceId=dev1;SharedAccessKey=k",
		},
		{
			name:     "canonical spelling wins over later other casing",
			in:       "HostName=right;hostname=wrong;DeviceId=dev1;SharedAccessKey=k",
			want:     ConnectionString{HostName: "right", DeviceID: "dev1", SharedAccessKey: "k"},
			wantKind: KindDevice,
			wantStr:  "HostName=right;DeviceId=dev1;SharedAccessKey=k",
		},
		{
			name:     "canonical spelling wins over earlier other casing",
			in:       "hostname=wrong;HostName=right;DeviceId=dev1;SharedAccessKey=k",
			want:     ConnectionString{HostName: "right", DeviceID: "dev1", SharedAccessKey: "k"},
			wantKind: KindDevice,
			wantStr:  "HostName=right;DeviceId=dev1;SharedAccessKey=k",
		},
		{
			name:     "repeated name keeps last, as Node does",
			in:       "HostName=h.net;DeviceId=old;DeviceId=new;SharedAccessKey=k",
			want:     ConnectionString{HostName: "h.net", DeviceID: "new", SharedAccessKey: "k"},
			wantKind: KindDevice,
			wantStr:  "HostName=h.net;DeviceId=new;SharedAccessKey=k",
		},
		{
			name:     "no whitespace trimming",
			in:       "HostName=h.net; DeviceId=x;DeviceId=dev1 ;SharedAccessKey=k",
			want:     ConnectionString{HostName: "h.net", DeviceID: "dev1 ", SharedAccessKey: "k"},
			wantKind: KindDevice,
			wantStr:  "HostName=h.net;DeviceId=dev1 ;SharedAccessKey=k",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.in)
			if err != nil {
				t.Fatalf("ParseConnectionString(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseConnectionString mismatch (-want +got):\n%s", diff)
			}
			if k := got.Kind(); k != tt.wantKind {
				t.Errorf("Kind() = %v, want %v", k, tt.wantKind)
			}
			wantStr := tt.wantStr
			if wantStr == "" {
				wantStr = tt.in
			}
			if s := got.String(); s != wantStr {
				t.Errorf("String() = %q, want %q", s, wantStr)
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "missing HostName"},
		{"missing HostName", "DeviceId=dev1;SharedAccessKey=k", "missing HostName"},
		{"empty HostName", "HostName=;DeviceId=dev1;SharedAccessKey=k", "missing HostName"},
		{"neither device nor policy", "HostName=h.net;SharedAccessKey=k", "missing DeviceId (device) or SharedAccessKeyName (service)"},
		{"module without device", "HostName=h.net;ModuleId=m;SharedAccessKey=k", "ModuleId but no DeviceId"},
		{"device without credential", "HostName=h.net;DeviceId=dev1", "no credential; want one of SharedAccessKey, SharedAccessSignature or x509=true"},
		{"device x509 false only", "HostName=h.net;DeviceId=dev1;x509=false", "no credential"},
		{"key and token", "HostName=h.net;DeviceId=dev1;SharedAccessKey=k;SharedAccessSignature=" + vectorDevice, "has SharedAccessKey and SharedAccessSignature; want only one"},
		{"key and x509", "HostName=h.net;DeviceId=dev1;SharedAccessKey=k;x509=true", "has SharedAccessKey and x509=true; want only one"},
		{"token and x509", "HostName=h.net;DeviceId=dev1;SharedAccessSignature=s;x509=true", "has SharedAccessSignature and x509=true"},
		{"all three", "HostName=h.net;DeviceId=dev1;SharedAccessKey=k;SharedAccessSignature=s;x509=true", "has SharedAccessKey and SharedAccessSignature and x509=true"},
		{"bad x509 value", "HostName=h.net;DeviceId=dev1;x509=yes", "x509=yes; want true or false"},
		{"service without key", "HostName=h.net;SharedAccessKeyName=p", "no credential; want one of SharedAccessKey or SharedAccessSignature"},
		{"service with both", "HostName=h.net;SharedAccessKeyName=p;SharedAccessKey=k;SharedAccessSignature=s", "has SharedAccessKey and SharedAccessSignature"},
		{"service with x509", "HostName=h.net;SharedAccessKeyName=p;SharedAccessKey=k;x509=true", "cannot use x509"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.in)
			if err == nil {
				t.Fatalf("ParseConnectionString(%q) = %+v, nil; want error containing %q", tt.in, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateRejectsSemicolon(t *testing.T) {
	c := ConnectionString{HostName: "h.net", DeviceID: "a;b", SharedAccessKey: "k"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "DeviceId contains ';'") {
		t.Errorf("Validate() = %v, want error about DeviceId containing ';'", err)
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind Kind
		want string
	}{
		{KindUnknown, "unknown"}, {KindService, "service"}, {KindDevice, "device"}, {KindModule, "module"}, {Kind(42), "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.want {
				t.Errorf("Kind(%d).String() = %q, want %q", int(tt.kind), got, tt.want)
			}
		})
	}
}
