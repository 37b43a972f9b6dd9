// SPDX-License-Identifier: MIT

package emulator_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
)

// BenchmarkStartup measures New + Start until both listeners serve, on a
// data dir that already holds its certificates (the common case), and on a
// fresh one (first start: CA and server certificate are generated).
func BenchmarkStartup(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		b.Run(fmt.Sprintf("fresh=%v", fresh), func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; i < b.N; i++ {
				if fresh {
					dir = b.TempDir()
				}
				s, err := emulator.New(emulator.Options{DataDir: dir, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Start(); err != nil {
					b.Fatal(err)
				}
				if !s.Ready() {
					b.Fatal("not ready after Start")
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRegistry measures device create and get through the REST API,
// beside a baseline: a bare HTTPS request on the same TLS stack and client
// to a handler that does nothing. Report the ratios.
func BenchmarkRegistry(b *testing.B) {
	srv := emulator.RunT(b)
	cs, _ := sas.ParseConnectionString(srv.ConnectionString())
	tok, _ := sas.NewToken(sas.ResourceURI(cs.HostName, "", ""), cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig(), MaxIdleConnsPerHost: 256}}
	do := func(b *testing.B, method, url, body string) {
		req, _ := http.NewRequest(method, url, bodyReader(body))
		req.Header.Set("Authorization", tok)
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("%s %s: %d", method, url, resp.StatusCode)
		}
	}
	base := "https://" + cs.HostName

	b.Run("baseline-https", func(b *testing.B) {
		ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Write([]byte("{}"))
		}))
		ts.TLS = srv.TLSConfig().Clone()
		ts.TLS.Certificates = nil
		ts.StartTLS()
		defer ts.Close()
		c := ts.Client()
		c.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Get(ts.URL + "/devices/x?api-version=2021-04-12")
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	})
	var n atomic.Int64
	b.Run("create", func(b *testing.B) {
		// Writes wait for fsync; with many writers the store group-commits.
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				id := fmt.Sprintf("bench-%d", n.Add(1))
				do(b, "PUT", base+"/devices/"+id+"?api-version=2021-04-12", `{"deviceId":"`+id+`"}`)
			}
		})
	})
	srv.CreateDevice("bench-get")
	b.Run("get", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				do(b, "GET", base+"/devices/bench-get?api-version=2021-04-12", "")
			}
		})
	})
}

func bodyReader(s string) io.Reader {
	if s == "" {
		return nil
	}
	return strings.NewReader(s)
}
