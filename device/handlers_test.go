// SPDX-License-Identifier: MIT

package device

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// publish is a PUBLISH from the hub as paho hands it to the client.
type publish struct {
	topic   string
	payload []byte
}

func (p publish) Duplicate() bool   { return false }
func (p publish) Qos() byte         { return 0 }
func (p publish) Retained() bool    { return false }
func (p publish) Topic() string     { return p.topic }
func (p publish) MessageID() uint16 { return 0 }
func (p publish) Payload() []byte   { return p.payload }
func (p publish) Ack()              {}

// idleClient returns a client for dev1 that never connects: the tests feed
// it publishes through dispatch, as paho's router would.
func idleClient(t *testing.T) *Client {
	t.Helper()
	c, err := NewFromConnectionString("HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// collect reads n strings from ch, failing t if they do not come.
func collect(t *testing.T, ch <-chan string, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case s := <-ch:
			got = append(got, s)
		case <-timeout:
			t.Fatalf("got %q, want %d items", got, n)
		}
	}
	return got
}

// TestHandlerGetsQueuedItems checks that a handler registered after items
// arrived with no handler set is handed those items, oldest first, before
// the ones that arrive later, and that items meant for something else stay
// queued for the Receive calls.
func TestHandlerGetsQueuedItems(t *testing.T) {
	tests := []struct {
		name     string
		before   []publish // arrive before register
		register func(c *Client, got chan<- string)
		after    publish
		want     []string
		anyOrder bool                                                 // method handlers run concurrently
		left     func(ctx context.Context, c *Client) (string, error) // what a Receive call still gets
		wantLeft string
	}{
		{
			name:   "cloud-to-device message",
			before: []publish{{"devices/dev1/messages/devicebound/", []byte("1")}, {"devices/dev1/messages/devicebound/", []byte("2")}},
			register: func(c *Client, got chan<- string) {
				c.OnMessage(func(m *Message) { got <- string(m.Body) })
			},
			after: publish{"devices/dev1/messages/devicebound/", []byte("3")},
			want:  []string{"1", "2", "3"},
		},
		{
			name: "desired patch",
			before: []publish{
				{"$iothub/twin/PATCH/properties/desired/?$version=2", []byte(`{"a":1,"$version":2}`)},
				{"$iothub/twin/PATCH/properties/desired/?$version=3", []byte(`{"a":2}`)},
			},
			register: func(c *Client, got chan<- string) {
				c.OnDesiredPropertiesUpdate(func(p Properties, v int64) {
					got <- fmt.Sprintf("a=%v v%d", p["a"], v)
				})
			},
			after: publish{"$iothub/twin/PATCH/properties/desired/?$version=4", []byte(`{"a":3,"$version":4}`)},
			want:  []string{"a=1 v2", "a=2 v3", "a=3 v4"},
		},
		{
			name: "method handler",
			before: []publish{
				{"$iothub/methods/POST/reboot/?$rid=1", []byte(`{}`)},
				{"$iothub/methods/POST/other/?$rid=2", []byte(`{}`)},
				{"$iothub/methods/POST/reboot/?$rid=3", []byte(`{}`)},
			},
			register: func(c *Client, got chan<- string) {
				c.HandleMethod("reboot", func(_ context.Context, r *MethodRequest) (int, any) {
					got <- r.RequestID
					return 200, nil
				})
			},
			after:    publish{"$iothub/methods/POST/reboot/?$rid=4", nil},
			want:     []string{"1", "3", "4"},
			anyOrder: true,
			left: func(ctx context.Context, c *Client) (string, error) {
				r, err := c.ReceiveMethodRequest(ctx, "")
				if err != nil {
					return "", err
				}
				return r.Name + "/" + r.RequestID, nil
			},
			wantLeft: "other/2",
		},
		{
			name: "default method handler",
			before: []publish{
				{"$iothub/methods/POST/a/?$rid=1", nil},
				{"$iothub/methods/POST/b/?$rid=2", nil},
			},
			register: func(c *Client, got chan<- string) {
				c.SetDefaultMethodHandler(func(_ context.Context, r *MethodRequest) (int, any) {
					got <- r.Name + "/" + r.RequestID
					return 200, nil
				})
			},
			after:    publish{"$iothub/methods/POST/c/?$rid=3", nil},
			want:     []string{"a/1", "b/2", "c/3"},
			anyOrder: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := idleClient(t)
			for _, p := range tt.before {
				c.dispatch(p)
			}
			got := make(chan string, len(tt.want))
			tt.register(c, got)
			c.dispatch(tt.after)
			items := collect(t, got, len(tt.want))
			if tt.anyOrder {
				slices.Sort(items)
			}
			if diff := cmp.Diff(tt.want, items); diff != "" {
				t.Errorf("handler got (-want +got):\n%s", diff)
			}
			if tt.left != nil {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				left, err := tt.left(ctx, c)
				if err != nil || left != tt.wantLeft {
					t.Errorf("left for Receive: got %q, %v, want %q", left, err, tt.wantLeft)
				}
			}
		})
	}
}

// TestReceiveMethodRequestGetsEarlierRequests checks that the first
// ReceiveMethodRequest for a name takes the requests for that name that
// arrived before it and that nothing else claimed.
func TestReceiveMethodRequestGetsEarlierRequests(t *testing.T) {
	c := idleClient(t)
	c.dispatch(publish{"$iothub/methods/POST/other/?$rid=1", nil})
	c.dispatch(publish{"$iothub/methods/POST/reboot/?$rid=2", nil})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, err := c.ReceiveMethodRequest(ctx, "reboot")
	if err != nil || r.RequestID != "2" {
		t.Fatalf("ReceiveMethodRequest(reboot) = %+v, %v, want request 2", r, err)
	}
	r, err = c.ReceiveMethodRequest(ctx, "")
	if err != nil || r.RequestID != "1" {
		t.Errorf("ReceiveMethodRequest(\"\") = %+v, %v, want request 1", r, err)
	}
}
