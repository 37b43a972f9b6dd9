// SPDX-License-Identifier: MIT

package mqttapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/certs"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// rawConnect is a CONNECT built byte by byte, so that a test can set what
// encoders refuse to: reserved bits, odd protocol names, flags that
// disagree with the payload.
type rawConnect struct {
	name     string // protocol name; "" means "MQTT"
	level    byte   // protocol level; 0 means 4
	flags    byte   // connect flags as sent, reserved bit included
	clientID string
	willTop  string // written when flags has the will bit
	willMsg  string
	user     string // written when flags has the username bit
	pass     string // written when flags has the password bit
}

// Connect flag bits [MQTT-3.1.2.3].
const (
	flagReserved = 0x01
	flagClean    = 0x02
	flagWill     = 0x04
	flagWillQoS1 = 0x08
	flagWillQoS3 = 0x18
	flagRetain   = 0x20
	flagPassword = 0x40
	flagUsername = 0x80
)

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// appendLength appends an MQTT remaining length.
func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func (c rawConnect) bytes() []byte {
	name, level := c.name, c.level
	if name == "" {
		name = "MQTT"
	}
	if level == 0 {
		level = 4
	}
	body := appendString(nil, name)
	body = append(body, level, c.flags, 0, 60)
	body = appendString(body, c.clientID)
	if c.flags&flagWill != 0 {
		body = appendString(body, c.willTop)
		body = appendString(body, c.willMsg)
	}
	if c.flags&flagUsername != 0 {
		body = appendString(body, c.user)
	}
	if c.flags&flagPassword != 0 {
		body = appendString(body, c.pass)
	}
	return append(appendLength([]byte{0x10}, len(body)), body...)
}

// readUntilClosed returns everything the server sends until it closes
// the connection; it fails the test if the server keeps it open.
func readUntilClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitTime))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open (received % x)", got.Bytes())
	}
	return got.Bytes()
}

// TestConnectRefusalsUse311Codes sends CONNECTs that mochi would answer with
// MQTT 5 reason codes (130, 133, ...), which a 3.1.1 client cannot read: each
// must get a 3.1.1 return code, or a closed connection without a CONNACK
// where MQTT 3.1.1 says to disconnect [MQTT-3.2.2-6].
func TestConnectRefusalsUse311Codes(t *testing.T) {
	e := newEnv(t)
	id := hub.Identity{DeviceID: "dev1"}
	key := e.addDevice(t, id.DeviceID)
	tok := token(t, id, "", key, farFuture())
	user := username(id.DeviceID)
	creds := byte(flagUsername | flagPassword)
	const closed = ""
	connack := func(code byte) string { return string([]byte{0x20, 2, 0, code}) }
	tests := []struct {
		name string
		c    rawConnect
		want string
	}{
		{"accepted", rawConnect{flags: creds | flagClean, clientID: "dev1", user: user, pass: tok}, connack(0)},
		{"protocol level 3 with name MQTT [MQTT-3.1.2-2]", rawConnect{level: 3, flags: creds, clientID: "dev1", user: user, pass: tok}, connack(1)},
		{"protocol level 6", rawConnect{level: 6, flags: creds, clientID: "dev1", user: user, pass: tok}, connack(1)},
		{"protocol level 0", rawConnect{level: 255, flags: creds, clientID: "dev1", user: user, pass: tok}, connack(1)},
		{"MQTT 3.1 with a 3.1.1 level", rawConnect{name: "MQIsdp", level: 4, flags: creds, clientID: "dev1", user: user, pass: tok}, connack(1)},
		{"protocol name other than MQTT [MQTT-3.1.2-1]", rawConnect{name: "HTTP", flags: creds, clientID: "dev1", user: user, pass: tok}, closed},
		{"lower-case protocol name", rawConnect{name: "mqtt", flags: creds, clientID: "dev1", user: user, pass: tok}, closed},
		{"reserved flag bit [MQTT-3.1.2-3]", rawConnect{flags: creds | flagReserved, clientID: "dev1", user: user, pass: tok}, closed},
		{"will QoS without the will flag [MQTT-3.1.2-13]", rawConnect{flags: creds | flagWillQoS1, clientID: "dev1", user: user, pass: tok}, closed},
		{"will retain without the will flag [MQTT-3.1.2-15]", rawConnect{flags: creds | flagRetain, clientID: "dev1", user: user, pass: tok}, closed},
		{"will QoS 3 [MQTT-3.1.2-14]", rawConnect{flags: creds | flagWill | flagWillQoS3, clientID: "dev1", willTop: "devices/dev1/messages/events/", willMsg: "x", user: user, pass: tok}, closed},
		{"empty will topic", rawConnect{flags: creds | flagWill, clientID: "dev1", willTop: "", willMsg: "x", user: user, pass: tok}, closed},
		{"empty will message", rawConnect{flags: creds | flagWill, clientID: "dev1", willTop: "devices/dev1/messages/events/", user: user, pass: tok}, closed},
		{"password without username [MQTT-3.1.2-22]", rawConnect{flags: flagPassword, clientID: "dev1", pass: tok}, closed},
		{"password flag with an empty password: no credentials", rawConnect{flags: creds, clientID: "dev1", user: user, pass: ""}, connack(5)},
		{"no password", rawConnect{flags: flagUsername, clientID: "dev1", user: user}, connack(5)},
		{"empty client id with a persistent session [MQTT-3.1.3-8]", rawConnect{flags: creds, clientID: "", user: user, pass: tok}, connack(2)},
	}
	for _, tt := range tests {
		for _, ws := range []bool{false, true} {
			name := tt.name + map[bool]string{false: "/tls", true: "/wss"}[ws]
			t.Run(name, func(t *testing.T) {
				d := e.dialRaw(t, ws)
				if _, err := d.Write(tt.c.bytes()); err != nil {
					t.Fatal(err)
				}
				if tt.want == connack(0) {
					d.expect(t, "CONNACK", []byte(tt.want))
					return
				}
				if got := readUntilClosed(t, d); string(got) != tt.want {
					t.Fatalf("got % x before the close, want % x", got, []byte(tt.want))
				}
			})
		}
	}
}

// TestX509DeviceWithEmptyPassword: a zero-length password is no credential;
// the certificate still authenticates the device.
func TestX509DeviceWithEmptyPassword(t *testing.T) {
	e := newEnv(t)
	cert, err := certs.SelfSigned("x509dev", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	thumb := certs.Thumbprint(cert.Leaf)
	if _, err := e.hub.PutDevice(context.Background(), &hub.Device{DeviceID: "x509dev",
		Authentication: hub.Authentication{Type: hub.AuthSelfSigned, X509Thumbprint: &hub.X509Thumbprint{PrimaryThumbprint: &thumb}}}, ""); err != nil {
		t.Fatal(err)
	}
	d := e.dialRawCert(t, false, &cert)
	c := rawConnect{flags: flagUsername | flagPassword, clientID: "x509dev", user: username("x509dev")}
	if _, err := d.Write(c.bytes()); err != nil {
		t.Fatal(err)
	}
	d.expect(t, "CONNACK", []byte{0x20, 2, 0, 0})
}

// TestOversizedConnectClosed: a CONNECT whose remaining length is over
// the pre-authentication limit is refused at its fixed header, without a
// CONNACK (3.1.1 has no code for it), before its body is read.
func TestOversizedConnectClosed(t *testing.T) {
	e := newEnv(t)
	for _, ws := range []bool{false, true} {
		t.Run(map[bool]string{false: "tls", true: "wss"}[ws], func(t *testing.T) {
			d := e.dialRaw(t, ws)
			head := appendLength([]byte{0x10}, maxConnectSize+1)
			if _, err := d.Write(append(head, "\x00\x04MQTT\x04"...)); err != nil {
				t.Fatal(err)
			}
			if got := readUntilClosed(t, d); len(got) != 0 {
				t.Fatalf("got % x, want the connection closed without a CONNACK", got)
			}
		})
	}
}

// TestFirstPacketMustBeConnect: anything else first closes the connection.
func TestFirstPacketMustBeConnect(t *testing.T) {
	e := newEnv(t)
	for _, first := range [][]byte{
		{0xc0, 0},                            // PINGREQ
		{0x11, 0},                            // CONNECT with a reserved fixed-header flag
		{0x10, 0xff, 0xff, 0xff, 0xff, 0x01}, // five length bytes
		{0x30, 0x02, 0, 0},                   // PUBLISH
	} {
		d := e.dialRaw(t, false)
		if _, err := d.Write(first); err != nil {
			t.Fatal(err)
		}
		if got := readUntilClosed(t, d); len(got) != 0 {
			t.Fatalf("first packet % x: got % x, want the connection closed", first, got)
		}
	}
}

// TestUnauthenticatedConnectDoesNotQueue: a CONNECT without valid
// credentials is answered at once, even while a connection of the same
// client id is being set up: it never waits in that client id's queue,
// where it could hold its connection for the queue's 30 s and delay the
// device's own connections.
func TestUnauthenticatedConnectDoesNotQueue(t *testing.T) {
	e := newEnv(t)
	e.addDevice(t, "dev1")
	unlock, err := e.srv.setup.lock(context.Background(), "dev1") // a setup in progress
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, ws := range []bool{false, true} {
		d := e.dialRaw(t, ws)
		c := rawConnect{flags: flagUsername | flagPassword | flagClean, clientID: "dev1", user: username("dev1"), pass: "SharedAccessSignature sr=x&sig=y&se=1"}
		if _, err := d.Write(c.bytes()); err != nil {
			t.Fatal(err)
		}
		d.expect(t, "CONNACK", []byte{0x20, 2, 0, 5})
	}
}
