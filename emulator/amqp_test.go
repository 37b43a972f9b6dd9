// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/gorilla/websocket"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
)

// amqpPutToken puts the owner's token on $cbs and reports the status.
func amqpPutToken(t *testing.T, srv *emulator.Server, c *goamqp.Conn) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := sas.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.NewToken(srv.HostName(), cs.SharedAccessKeyName, cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(ctx, "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "$cbs", &goamqp.ReceiverOptions{TargetAddress: "cbs-reply"})
	if err != nil {
		t.Fatal(err)
	}
	reply := "cbs-reply"
	err = snd.Send(ctx, &goamqp.Message{Value: tok, Properties: &goamqp.MessageProperties{MessageID: "1", ReplyTo: &reply},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": srv.HostName()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	status, _ := m.ApplicationProperties["status-code"].(int32)
	return status
}

// TestAMQPListeners: RunT serves AMQP over TLS, plain AMQP and AMQP over
// WebSockets on the HTTPS port, where MQTT over WebSockets still answers.
func TestAMQPListeners(t *testing.T) {
	srv := emulator.RunT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	anon := &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}
	tlsOpts := *anon
	tlsOpts.TLSConfig = srv.TLSConfig()
	dial := map[string]func() (*goamqp.Conn, error){
		"tls":   func() (*goamqp.Conn, error) { return goamqp.Dial(ctx, "amqps://"+srv.AMQPAddr(), &tlsOpts) },
		"plain": func() (*goamqp.Conn, error) { return goamqp.Dial(ctx, "amqp://"+srv.AMQPPlainAddr(), anon) },
	}
	for _, path := range []string{"/$iothub/websocket", "/$servicebus/websocket"} {
		dial["websocket "+path] = func() (*goamqp.Conn, error) {
			nc, err := wsDial(ctx, srv, path, "AMQPWSB10")
			if err != nil {
				return nil, err
			}
			return goamqp.NewConn(ctx, nc, anon)
		}
	}
	for name, d := range dial {
		t.Run(name, func(t *testing.T) {
			c, err := d()
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer c.Close()
			if got := amqpPutToken(t, srv, c); got != 200 {
				t.Fatalf("put-token: status %d, want 200", got)
			}
		})
	}
	t.Run("mqtt over websockets on the same path", func(t *testing.T) {
		nc, err := wsDial(ctx, srv, "/$iothub/websocket", "mqtt")
		if err != nil {
			t.Fatalf("MQTT-WS upgrade: %v", err)
		}
		nc.Close()
	})
}

// wsDial upgrades to a WebSocket with the subprotocol.
func wsDial(ctx context.Context, srv *emulator.Server, path, proto string) (net.Conn, error) {
	d := websocket.Dialer{TLSClientConfig: srv.TLSConfig(), Subprotocols: []string{proto},
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.HTTPSAddr())
		}}
	ws, resp, err := d.DialContext(ctx, "wss://"+srv.HostName()+path, nil)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if !strings.EqualFold(ws.Subprotocol(), proto) {
		ws.Close()
		return nil, errors.New("server chose subprotocol " + ws.Subprotocol())
	}
	return &wsStream{ws: ws}, nil
}

type wsStream struct {
	ws  *websocket.Conn
	r   io.Reader
	wmu sync.Mutex
}

func (c *wsStream) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			_, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsStream) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(p), c.ws.WriteMessage(websocket.BinaryMessage, p)
}

func (c *wsStream) Close() error                       { return c.ws.NetConn().Close() }
func (c *wsStream) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsStream) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsStream) SetDeadline(t time.Time) error      { return c.ws.NetConn().SetDeadline(t) }
func (c *wsStream) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsStream) SetWriteDeadline(t time.Time) error { return c.ws.NetConn().SetWriteDeadline(t) }
