// SPDX-License-Identifier: MIT

package mqttapi

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/restapi"
	"github.com/iothubemulator/iothub/internal/sas"
)

// The whole direct-method path as a service sees it: HTTPS POST
// /twins/{id}/methods into the REST adapter, the hub, MQTT out to a paho
// device and its answer back. Compare with the sum of the two baselines in
// the same run: BenchmarkBareMochiRoundTrip and BenchmarkBareHTTPS.

// httpsFor serves h over TLS with the adapter's certificate and returns a
// client trusting it, so the REST path and its baseline share a TLS stack.
func (e *env) httpsFor(b *testing.B, h http.Handler) (*httptest.Server, *http.Client) {
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = e.ws.TLS.Clone()
	ts.StartTLS()
	b.Cleanup(ts.Close)
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: e.roots, ServerName: hostName},
		MaxIdleConnsPerHost: 256,
	}}
	b.Cleanup(c.CloseIdleConnections)
	return ts, c
}

func post(b *testing.B, c *http.Client, url, auth, body string) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Errorf("POST %s: %d", url, resp.StatusCode)
	}
}

func BenchmarkServiceMethodRoundTrip(b *testing.B) {
	cases := []struct{ devices, parallel int }{{1, 1}, {1000, 1}, {1000, 64}}
	for _, c := range cases {
		b.Run(fmt.Sprintf("devices=%d/parallel=%d", c.devices, c.parallel), func(b *testing.B) {
			e := newEnv(b)
			ids := echoDevices(b, e, c.devices)
			ts, client := e.httpsFor(b, restapi.New(restapi.Options{Hub: e.hub}))
			p, _ := e.hub.Policy(hub.OwnerPolicy)
			auth, err := sas.NewToken(hostName, p.Name, p.PrimaryKey, time.Now().Add(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			body := `{"methodName":"echo","payload":{"n":1},"responseTimeoutInSeconds":30}`
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			runParallel(b, c.parallel, func() {
				id := ids[next.Add(1)%uint64(len(ids))]
				post(b, client, ts.URL+"/twins/"+id.DeviceID+"/methods?api-version=2021-04-12", auth, body)
			})
		})
	}
}

// BenchmarkBareHTTPS is the HTTPS baseline: the same TLS stack and client,
// a handler that reads the body and answers a small JSON document.
func BenchmarkBareHTTPS(b *testing.B) {
	for _, parallel := range []int{1, 64} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			e := newEnv(b)
			ts, client := e.httpsFor(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"status":200,"payload":{"n":1}}`))
			}))
			b.ReportAllocs()
			b.ResetTimer()
			runParallel(b, parallel, func() {
				post(b, client, ts.URL+"/twins/x/methods?api-version=2021-04-12", "x", `{"methodName":"echo"}`)
			})
		})
	}
}
