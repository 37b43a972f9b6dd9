// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/internal/sas"
)

// fuzzConn is a connection's adapter state over a hub with device d1, for
// the parsers that take what a peer sends.
func fuzzConn(f *testing.F) (*conn, string) {
	db, err := store.OpenTemp()
	if err != nil {
		f.Fatal(err)
	}
	key := sas.GenerateKey()
	h, err := hub.New(db, hub.Config{HostName: hostName, Policies: hub.DefaultPolicies(key)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close(); db.Close() })
	if _, err := h.PutDevice(context.Background(), &hub.Device{DeviceID: "d1"}, ""); err != nil {
		f.Fatal(err)
	}
	a, b := net.Pipe()
	f.Cleanup(func() { a.Close(); b.Close() })
	c := newConn(New(Options{Hub: h}), a, TransportPlain)
	f.Cleanup(c.ended)
	tok, err := sas.NewToken(hostName, "service", hub.DefaultPolicies(key)[1].PrimaryKey, time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	return c, tok
}

// FuzzCredentials feeds put-token audiences and tokens, SASL PLAIN user
// names and link addresses to the adapter's parsers: they must refuse
// what they cannot read, never panic, and never grant a claim for a token
// the hub did not verify.
func FuzzCredentials(f *testing.F) {
	c, good := fuzzConn(f)
	for _, s := range [][2]string{
		{hostName, good},
		{"amqps://" + hostName + ":5671/" + hostName + "/ConsumerGroups/$Default/Partitions/0", good},
		{"sb://" + hostName + "/" + hostName + "/$management", good},
		{hostName + "/devices/d1", "SharedAccessSignature sr=localhost%2Fdevices%2Fd1&sig=abc&se=1"},
		{hostName + "/devices/d1/modules/m%2F1", "SharedAccessSignature sr=x&sig=y&se=2&skn=device"},
		{hostName + "/devices/%zz", "Bearer x"},
		{hostName + "%2Fdevices%2Fd1%2Fmodules%2Fm1", "SharedAccessSignature sr=x&sig=y&se=2"}, // as Node's device SDK puts it
		{"service@sas.root." + hostName, good},
		{"d1@sas." + hostName, "SharedAccessSignature"},
		{"d1/modules/m1@sas." + hostName, ""},
		{"/messages/events/ConsumerGroups/$Default/Partitions/1", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, token string) {
		if cl, err := c.tokenClaim(name, token); err == nil && cl.token != token {
			t.Fatalf("a claim for %q holds another token", name)
		}
		if cl, err := c.plainClaim(name, token); err == nil && cl.token != token {
			t.Fatalf("a PLAIN claim for %q holds another token", name)
		}
		_, _, _ = deviceAudience(name)
		_ = eventsRest(name)
		_ = isEventHubEntity(name, hostName)
		_, _ = ParseAddress(name, hostName)
	})
}

// FuzzC2DMessage decodes peer bytes as an AMQP message and converts it as
// /messages/devicebound does: a refusal or a message, never a panic.
func FuzzC2DMessage(f *testing.F) {
	for _, m := range []*amqp.Message{
		{Properties: &amqp.Properties{To: "/devices/d1/messages/devicebound", MessageID: amqp.UUID{1}, CorrelationID: uint64(7), UserID: []byte("u")},
			ApplicationProperties: map[string]any{"iothub-ack": "full", "n": int32(3), "b": true}, Data: [][]byte{[]byte("a"), []byte("b")}},
		{Properties: &amqp.Properties{MessageID: []byte{1, 2}}, Value: "text"},
		{Value: map[string]any{"x": 1.5}},
		{Sequence: [][]any{{int64(1)}}},
	} {
		f.Add(mustEncode(f, m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := amqp.DecodeMessage(b, codec.DefaultLimits())
		if err != nil {
			return
		}
		if m.Properties == nil {
			m.Properties = &amqp.Properties{}
		}
		out, err := c2dMessage(m)
		if err == nil && out.Body == nil {
			t.Fatal("a converted message without a body")
		}
		_ = idString(m.Properties.MessageID)
		_ = idString(m.Properties.CorrelationID)
	})
}
