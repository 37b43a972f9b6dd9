// SPDX-License-Identifier: MIT

package service_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// countingPolicy records how often the client consults it, and never
// retries.
type countingPolicy struct{ calls atomic.Int32 }

func (p *countingPolicy) Delay(int, error) (time.Duration, bool) {
	p.calls.Add(1)
	return 0, false
}

// nxdomainServer answers every DNS query over UDP with NXDOMAIN, as a
// resolver does for a name that does not exist, and returns its address.
func nxdomainServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			resp := append([]byte(nil), buf[:n]...)
			resp[2] |= 0x80                   // QR: a response
			resp[3] = resp[3]&0xf0 | 0x80 | 3 // RA, RCODE 3: NXDOMAIN
			for i := 6; i < 12; i++ {         // no answer, authority or additional records
				resp[i] = 0
			}
			pc.WriteTo(resp, addr)
		}
	}()
	return pc.LocalAddr().String()
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// dialingTo is an HTTP client that connects to addr whatever the host,
// as /etc/hosts would, trusting pool.
func dialingTo(addr string, pool *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
}

// TestDeterministicFailuresAreNotRetried checks that failures a repeat
// cannot mend come back after one attempt, without consulting the retry
// policy, and that a refused connection to this machine (an emulator that
// may be starting) still is retried.
func TestDeterministicFailuresAreNotRetried(t *testing.T) {
	srv := emulator.RunT(t)
	owner := "SharedAccessKeyName=iothubowner;SharedAccessKey=" + emulator.WellKnownOwnerKey
	dns := nxdomainServer(t)
	resolving := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Resolver: &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", dns)
		},
	}}).DialContext}}

	tests := []struct {
		name      string
		cs        string
		opts      []service.Option
		wantRetry bool
		want      []string // in the error message
		check     func(t *testing.T, err error)
	}{
		{
			name: "the emulator's certificate, untrusted",
			cs:   srv.ConnectionString(),
			want: []string{"certificate signed by unknown authority", "this is the IoT Hub emulator, whose CA is not trusted",
				"service.WithRootCAs", "IOTHUB_CA_FILE", "iothub-data/ca.pem", "https://" + hostOf(srv.ConnectionString()) + "/emulator/ca.pem"},
			check: func(t *testing.T, err error) {
				var verr *tls.CertificateVerificationError
				if !errors.As(err, &verr) {
					t.Errorf("errors.As(*tls.CertificateVerificationError) fails on %v", err)
				}
			},
		},
		{
			name: "a name the certificate does not hold",
			cs:   "HostName=hub.test;" + owner,
			opts: []service.Option{service.WithHTTPClient(dialingTo(srv.HTTPSAddr(), srv.CAPool()))},
			want: []string{"certificate is valid for", "the certificate does not name hub.test", "--tls-san"},
		},
		{
			name: "a host name that does not resolve",
			cs:   "HostName=nowhere.test;" + owner,
			opts: []service.Option{service.WithHTTPClient(resolving)},
			want: []string{"no such host"},
		},
		{
			name: "refused by another machine",
			cs:   "HostName=hub.test;" + owner,
			opts: []service.Option{service.WithHTTPClient(dialingTo(closedPort(t), nil))},
			want: []string{"connection refused"},
		},
		{
			name:      "refused on this machine",
			cs:        "HostName=" + strings.Replace(closedPort(t), "127.0.0.1", "localhost", 1) + ";" + owner,
			wantRetry: true,
			want:      []string{"connection refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &countingPolicy{}
			c, err := service.NewFromConnectionString(tt.cs, append(tt.opts, service.WithRetryPolicy(p))...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = c.GetDevice(ctx, "dev1")
			if err == nil {
				t.Fatal("GetDevice succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := p.calls.Load() > 0; got != tt.wantRetry {
				t.Errorf("retry policy consulted: %v, want %v (error %v)", got, tt.wantRetry, err)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func hostOf(cs string) string {
	h, _, _ := strings.Cut(strings.TrimPrefix(cs, "HostName="), ";")
	return h
}
