// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/sas"
)

// Tests of what the hub offers transports beyond MQTT and REST: feedback
// notification and dead-lettering, policy tokens for AMQP audiences, the
// generation id on recorded messages.

func TestFeedbackNotifyWakesAfterCommit(t *testing.T) {
	e := newC2DEnv(t)
	ctx := context.Background()
	wait := e.hub.FeedbackNotify()
	if m, err := e.hub.ReceiveFeedback(ctx, 0); err != nil || m != nil {
		t.Fatalf("ReceiveFeedback on an empty queue: %v, %v; want nothing", m, err)
	}
	e.send("dev1", "a", AckFull, 0)
	if err := e.hub.CompleteC2DLock(ctx, "dev1", e.lockOf("a"), false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait:
	case <-time.After(5 * time.Second):
		t.Fatal("FeedbackNotify did not fire when feedback was queued")
	}
	m, err := e.hub.ReceiveFeedback(ctx, 0)
	if err != nil || m == nil {
		t.Fatalf("ReceiveFeedback after the wake-up: %v, %v; want the message", m, err)
	}
	wait = e.hub.FeedbackNotify()
	if err := e.hub.AbandonFeedback(ctx, m.LockToken); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait:
	default:
		t.Fatal("FeedbackNotify did not fire when a message was abandoned")
	}
	m, err = e.hub.ReceiveFeedback(ctx, 0)
	if err != nil || m == nil || m.DeliveryCount != 2 {
		t.Fatalf("redelivery: %+v, %v; want delivery count 2", m, err)
	}
	if err := e.hub.RejectFeedback(ctx, m.LockToken); err != nil {
		t.Fatal(err)
	}
	if err := e.hub.RejectFeedback(ctx, m.LockToken); err == nil {
		t.Error("rejecting twice: want the lock-lost error")
	}
	e.hub.Clock().FastForward(2 * FeedbackLockTimeout)
	if m, err := e.hub.ReceiveFeedback(ctx, 0); err != nil || m != nil {
		t.Fatalf("after reject: %+v, %v; want an empty queue (dead-lettered, not redelivered)", m, err)
	}
}

// lockOf receives the device's next message over HTTPS and returns its
// lock token, checking that it is the one with messageID.
func (e *c2dEnv) lockOf(messageID string) string {
	e.t.Helper()
	m, err := e.hub.ReceiveC2D(context.Background(), "dev1", 0)
	if err != nil || m == nil || m.MessageID != messageID {
		e.t.Fatalf("ReceiveC2D: %+v, %v; want %s", m, err, messageID)
	}
	return m.LockToken
}

func TestAuthenticatePolicyToken(t *testing.T) {
	h := newRegHub(t)
	later := regNow.Add(time.Hour)
	key := func(name string) string { p, _ := h.Policy(name); return p.PrimaryKey }
	tests := []struct {
		name, tokenResource, keyName, resource string
		expiry                                 time.Time
		policy                                 string // "" when refused
	}{
		{"hub token, hub resource", "myhub.example", "service", "myhub.example", later, "service"},
		{"hub token covers any path", "myhub.example", "service", "amqps://myhub.example:5671/myhub/ConsumerGroups/$Default/Partitions/0", later, "service"},
		{"schemes and ports on both sides", "sb://myhub.example:5671/myhub", OwnerPolicy, "amqps://myhub.example/myhub/$management", later, OwnerPolicy},
		{"lower-cased by the signer", "amqps://myhub.example/myhub/consumergroups/$default/partitions/1", "service", "amqps://myhub.example/myhub/ConsumerGroups/$Default/Partitions/1", later, "service"},
		{"path scope covers below it", "myhub.example/messages/events", "service", "myhub.example/messages/events/$management", later, "service"},
		{"path scope by whole segments", "myhub.example/messages/ev", "service", "myhub.example/messages/events", later, ""},
		{"another path", "myhub.example/messages/events", "service", "myhub.example/messages/devicebound", later, ""},
		{"another hub", "otherhub.example", "service", "otherhub.example", later, ""},
		{"unknown policy", "myhub.example", "nobody", "myhub.example", later, ""},
		{"wrong key", "myhub.example", "service", "myhub.example", later, ""},
		{"expired past the skew", "myhub.example", "service", "myhub.example", regNow.Add(-ClockSkew - time.Minute), ""},
		{"expired within the skew", "myhub.example", "service", "myhub.example", regNow.Add(-time.Minute), "service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := key(tc.keyName)
			if k == "" || tc.name == "wrong key" {
				k = key("device")
			}
			tok := regToken(t, tc.tokenResource, tc.keyName, k, tc.expiry)
			pt, err := h.AuthenticatePolicyToken(tok, tc.resource)
			if tc.policy == "" {
				wantAuthErr(t, err, 401003)
				return
			}
			if err != nil {
				t.Fatalf("AuthenticatePolicyToken: %v", err)
			}
			if p, _ := h.Policy(tc.policy); pt.Policy != tc.policy || pt.Rights != p.Rights || !pt.Expiry.Equal(tc.expiry.Truncate(time.Second)) {
				t.Errorf("got %+v, want policy %s with its rights, expiring %v", pt, tc.policy, tc.expiry)
			}
		})
	}
	if _, err := h.AuthenticatePolicyToken("Bearer abc", "myhub.example"); err == nil || !strings.Contains(err.Error(), "not a shared access signature") {
		t.Errorf("a bearer token: got %v, want a clear refusal", err)
	}
}

func TestSplitResource(t *testing.T) {
	for in, want := range map[string][2]string{
		"myhub.example":                             {"myhub.example", ""},
		"MyHub.Example:443/devices/d1/":             {"myhub.example", "devices/d1"},
		"amqps://myhub.example:5671/eh/$management": {"myhub.example", "eh/$management"},
		"sb://[::1]:5672/eh":                        {"[::1]", "eh"},
	} {
		h, p := SplitResource(in)
		if h != want[0] || p != want[1] {
			t.Errorf("SplitResource(%q) = %q, %q; want %q, %q", in, h, p, want[0], want[1])
		}
	}
}

func TestRecordedMessagesCarryGenerationID(t *testing.T) {
	h := newRegHub(t)
	d := regDevice(t, h, Device{DeviceID: "d1"})
	if err := h.RecordTelemetry(context.Background(), Identity{DeviceID: "d1"}, "sas", "mqtt", &Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ms, err := h.Telemetry("d1", "", 0, 0)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Telemetry: %v, %v", ms, err)
	}
	if ms[0].GenerationID == "" || ms[0].GenerationID != d.GenerationID {
		t.Errorf("generation id %q, want the device's %q", ms[0].GenerationID, d.GenerationID)
	}
}

// TestStartAfterEnqueuedTimeInMilliseconds: a reader that resumes after the
// enqueued time it was shown (milliseconds) does not get that message again.
func TestStartAfterEnqueuedTimeInMilliseconds(t *testing.T) {
	h := newRegHub(t)
	at := regNow.Add(123456789 * time.Nanosecond) // 123.456789 ms past the second
	h.Clock().Set(at)
	send(t, h, "d1", "first")
	h.Clock().Set(at.Add(time.Millisecond))
	send(t, h, "d1", "second")
	p := h.PartitionOf("d1")
	shown := at.Truncate(time.Millisecond)
	for _, tc := range []struct {
		inclusive bool
		want      int64
	}{{false, 1}, {true, 0}} {
		got, err := h.StartOf(p, Position{Enqueued: shown, Inclusive: tc.inclusive})
		if err != nil || got != tc.want {
			t.Errorf("StartOf(after %v, inclusive %v) = %d, %v; want %d", shown, tc.inclusive, got, err, tc.want)
		}
	}
}

// TestPolicyTokenSignedWithKeyText: Event Hubs clients sign with the key's
// text; the hub accepts that for policy tokens too.
func TestPolicyTokenSignedWithKeyText(t *testing.T) {
	h := newRegHub(t)
	p, _ := h.Policy("service")
	sr := "amqps%3a%2f%2fmyhub.example%2fmyhub%2f%24management"
	se := strconv.FormatInt(regNow.Add(time.Hour).Unix(), 10)
	m := hmac.New(sha256.New, []byte(p.PrimaryKey))
	m.Write([]byte(sr + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	tok := "SharedAccessSignature sr=" + sr + "&sig=" + sig + "&se=" + se + "&skn=service"
	if _, err := h.AuthenticatePolicyToken(tok, "amqps://myhub.example/myhub/$management"); err != nil {
		t.Fatalf("a token signed with the key text: %v", err)
	}
	other := hmac.New(sha256.New, []byte(sas.GenerateKey()))
	other.Write([]byte(sr + "\n" + se))
	bad := "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(other.Sum(nil))) + "&se=" + se + "&skn=service"
	if _, err := h.AuthenticatePolicyToken(bad, "amqps://myhub.example/myhub/$management"); err == nil {
		t.Fatal("a token signed with another key text was accepted")
	}
}
