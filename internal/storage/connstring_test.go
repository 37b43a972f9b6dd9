// SPDX-License-Identifier: MIT

package storage

import (
	"strings"
	"testing"
)

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name, cs           string
		wantName, wantHost string
		wantEndpoint       string
	}{
		{"azure", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
			"acct", "acct.blob.core.windows.net", "https://acct.blob.core.windows.net"},
		{"suffix default", "AccountName=acct;AccountKey=a2V5", "acct", "acct.blob.core.windows.net", "https://acct.blob.core.windows.net"},
		{"azurite explicit", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
			"devstoreaccount1", "127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1"},
		{"development storage", "UseDevelopmentStorage=true", DevAccountName, "127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1"},
		{"names in any case, trailing slash", "accountname=a;ACCOUNTKEY=a2V5;blobendpoint=https://azurite:10000/a/", "a", "azurite:10000/a", "https://azurite:10000/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseConnectionString(tt.cs)
			if err != nil {
				t.Fatal(err)
			}
			if a.Name != tt.wantName || a.HostName() != tt.wantHost || a.BlobEndpoint.String() != tt.wantEndpoint {
				t.Errorf("got name %q host %q endpoint %q, want %q %q %q", a.Name, a.HostName(), a.BlobEndpoint, tt.wantName, tt.wantHost, tt.wantEndpoint)
			}
		})
	}
}

func TestParseConnectionStringErrors(t *testing.T) {
	tests := []struct{ name, cs, want string }{
		{"empty", "", "AccountName is missing"},
		{"no key", "AccountName=a", "AccountKey is missing"},
		{"sas only", "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=x", "AccountName is missing"},
		{"bad key", "AccountName=a;AccountKey=!!", "not base64"},
		{"bad endpoint", "AccountName=a;AccountKey=a2V5;BlobEndpoint=ftp://x", "not an http(s) URL"},
		{"no equals", "AccountName", "not name=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConnectionString(tt.cs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestBlobURLEscapesSegments(t *testing.T) {
	a, err := ParseConnectionString("UseDevelopmentStorage=true")
	if err != nil {
		t.Fatal(err)
	}
	got := a.BlobURL("up", "dev 1/a#b?.txt")
	want := "http://127.0.0.1:10000/devstoreaccount1/up/dev%201/a%23b%3F.txt"
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestContainerBlobURL(t *testing.T) {
	got, err := ContainerBlobURL("https://h:1/acct/cont?sv=1&sig=a%2Fb", "devices.txt")
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://h:1/acct/cont/devices.txt?sv=1&sig=a%2Fb"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for _, bad := range []string{"", "not a url", "ftp://h/c", "https://h", "https://h/"} {
		if _, err := ContainerBlobURL(bad, "x"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzContainerBlobURL(f *testing.F) {
	for _, s := range []string{"https://h:1/acct/cont?sv=1&sig=x", "https://h/c/", "http://[::1]:9/a/b?c", "%zz", "https://h/%2F/x"} {
		f.Add(s, "devices.txt")
	}
	f.Fuzz(func(t *testing.T, container, blob string) {
		u, err := ContainerBlobURL(container, blob)
		if err != nil {
			return
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			t.Fatalf("%q -> %q", container, u)
		}
		_ = Redact(u)
	})
}
