// SPDX-License-Identifier: MIT

package emulator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/internal/sas"
)

// limitsWait bounds each wait in these tests for the server to act.
const limitsWait = 10 * time.Second

// startWithLimits starts an in-memory emulator on loopback with the HTTPS
// limits changed by set.
func startWithLimits(t *testing.T, set func(*httpsLimits)) *Server {
	t.Helper()
	srv, err := New(Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AMQPAddr: "127.0.0.1:0", AMQPPlainAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	set(&srv.limits)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// dialHTTP1 opens a TLS connection that speaks HTTP/1.1.
func dialHTTP1(t *testing.T, srv *Server) *tls.Conn {
	t.Helper()
	cfg := srv.TLSConfig()
	cfg.NextProtos = []string{"http/1.1"}
	c, err := tls.Dial("tcp", srv.HTTPSAddr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedByServer reads until the server closes c and returns what it sent;
// it fails the test if the connection is still open after limitsWait.
func closedByServer(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limitsWait))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v (received %q)", limitsWait, got.String())
	}
	return got.String()
}

// ownerToken is a service SAS token of the iothubowner policy.
func ownerToken(t *testing.T, srv *Server) string {
	t.Helper()
	cs, err := sas.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.NewToken(srv.HostName(), cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestHTTPSIdleConnectionClosed: a keep-alive connection that carries no
// request is closed after the idle timeout.
func TestHTTPSIdleConnectionClosed(t *testing.T) {
	srv := startWithLimits(t, func(l *httpsLimits) { l.idle = time.Second })
	c := dialHTTP1(t, srv)
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET /health: got %d (close %t), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	closedByServer(t, c)
}

// TestHTTPSSlowHeadersClosed: a client that does not finish its request
// headers is cut off, before any authentication could happen.
func TestHTTPSSlowHeadersClosed(t *testing.T) {
	srv := startWithLimits(t, func(l *httpsLimits) { l.readHeader = time.Second })
	c := dialHTTP1(t, srv)
	if _, err := io.WriteString(c, "GET /devices HTTP/1.1\r\nHost: localhost\r\nAuthorization: Shared"); err != nil {
		t.Fatal(err)
	}
	closedByServer(t, c)
}

// TestHTTPSHeaderSizeLimit: request headers over the limit are refused
// with 431, whatever route they name.
func TestHTTPSHeaderSizeLimit(t *testing.T) {
	srv := startWithLimits(t, func(*httpsLimits) {})
	c := dialHTTP1(t, srv)
	req := "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Filler: " + strings.Repeat("a", 128<<10) + "\r\n\r\n"
	go func() { _, _ = io.WriteString(c, req) }() // the server may answer before reading it all
	_ = c.SetReadDeadline(time.Now().Add(limitsWait))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("128 KiB of headers: got %d, want 431", resp.StatusCode)
	}
}

// TestHTTPSSlowBodyCut: an authenticated request whose body trickles is
// answered 408 and its connection closed once the body timeout passes.
func TestHTTPSSlowBodyCut(t *testing.T) {
	srv := startWithLimits(t, func(l *httpsLimits) { l.body = time.Second })
	c := dialHTTP1(t, srv)
	head := fmt.Sprintf("PUT /devices/slow?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"deviceId\":", ownerToken(t, srv))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	got := closedByServer(t, c)
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") {
		t.Fatalf("got %q, want a 408 answer before the close", got)
	}
}

// TestHTTPSWaitingRoutesOutliveWriteTimeout: with a write timeout shorter
// than their waits, a direct method the device answers late and a
// telemetry long poll still get their answers, over HTTP/1.1 and HTTP/2:
// those routes extend their own deadline by what they were asked to wait.
func TestHTTPSWaitingRoutesOutliveWriteTimeout(t *testing.T) {
	srv := startWithLimits(t, func(l *httpsLimits) { l.write = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := srv.CreateDevice("late")
	if err != nil {
		t.Fatal(err)
	}
	dc, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()), device.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	dc.HandleMethod("slow", func(context.Context, *device.MethodRequest) (int, any) {
		time.Sleep(2500 * time.Millisecond)
		return 200, "done"
	})
	if err := dc.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	tok := ownerToken(t, srv)
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			cfg := srv.TLSConfig()
			cfg.NextProtos = []string{proto}
			client := &http.Client{Timeout: limitsWait, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: proto == "h2"}}
			call := func(method, path, body string) (int, string, string) {
				req, err := http.NewRequestWithContext(ctx, method, "https://"+srv.HTTPSAddr()+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", tok)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", method, path, err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b), resp.Proto
			}
			code, body, got := call("POST", "/twins/late/methods?api-version=2021-04-12", `{"methodName":"slow","responseTimeoutInSeconds":10,"connectTimeoutInSeconds":5}`)
			if code != 200 || body != `{"status":200,"payload":"done"}` {
				t.Fatalf("method answered after 2.5 s (%s): got %d %s", got, code, body)
			}
			if want := map[string]string{"http/1.1": "HTTP/1.1", "h2": "HTTP/2.0"}[proto]; got != want {
				t.Fatalf("spoke %s, want %s", got, want)
			}
			head := func() uint64 {
				_, b, _ := call("GET", "/emulator/messages/head", "")
				var h struct{ SequenceNumber uint64 }
				if err := json.Unmarshal([]byte(b), &h); err != nil {
					t.Fatalf("head: %v (%s)", err, b)
				}
				return h.SequenceNumber
			}
			since := head()
			go func() {
				time.Sleep(2 * time.Second)
				_ = dc.SendMessage(ctx, &device.Message{Body: []byte(proto)})
			}()
			code, body, _ = call("GET", fmt.Sprintf("/emulator/messages?deviceId=late&since=%d&wait=8", since), "")
			if code != 200 || !strings.Contains(body, `"transport":"mqtt"`) {
				t.Fatalf("long poll answered after 2 s: got %d %s", code, body)
			}
		})
	}
}
