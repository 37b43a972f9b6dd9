// SPDX-License-Identifier: MIT

package amqpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/storage"
)

// fakeBlobStore answers the hub's storage calls: container creation, and
// blob properties (5 bytes, a fixed last-modified time).
type fakeBlobStore struct{}

func (fakeBlobStore) RoundTrip(r *http.Request) (*http.Response, error) {
	resp := &http.Response{Request: r, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(""))}
	switch r.Method {
	case http.MethodHead:
		resp.StatusCode = http.StatusOK
		resp.Header.Set("Content-Length", "5")
		resp.ContentLength = 5
		resp.Header.Set("Last-Modified", "Thu, 02 May 2024 09:00:00 GMT")
	default:
		resp.StatusCode = http.StatusCreated
	}
	return resp, nil
}

// withFileUpload configures file upload to a fake blob store.
func withFileUpload(tb testing.TB) envOption {
	acct, err := storage.ParseConnectionString("DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=https://127.0.0.1:10000/devstoreaccount1;")
	if err != nil {
		tb.Fatal(err)
	}
	return func(c *hub.Config, _ *Options) {
		c.FileUpload = &hub.FileUploadConfig{Account: acct, Container: "fileupload", Notifications: true}
		c.StorageHTTP = &http.Client{Transport: fakeBlobStore{}}
	}
}

// upload has a device upload a blob and notify success, which queues a
// notification.
func (e *env) upload(tb testing.TB, deviceID, blob string) {
	tb.Helper()
	ctx := context.Background()
	up, err := e.hub.CreateFileUpload(ctx, deviceID, blob)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.hub.CompleteFileUpload(ctx, deviceID, up.CorrelationID, hub.FileUploadStatus{IsSuccess: true, StatusCode: 200}); err != nil {
		tb.Fatal(err)
	}
}

func TestFileNotificationReceiver(t *testing.T) {
	e := newEnv(t, withFileUpload(t))
	e.addDevice(t, "d1")
	c := e.serviceConn(t, viaTLS)
	rcv, err := newSession(t, c).NewReceiver(ctxT(t), fileNotifications, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A waiting receiver is woken when the device notifies.
	e.upload(t, "d1", "logs/today.txt")
	m, err := rcv.Receive(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Properties == nil || m.Properties.ContentType == nil || *m.Properties.ContentType != hub.FileNotificationContentType || string(m.Properties.UserID) != hostName {
		t.Errorf("properties %+v; want content type %s and user-id %s", m.Properties, hub.FileNotificationContentType, hostName)
	}
	var n struct {
		DeviceID        string `json:"deviceId"`
		BlobURI         string `json:"blobUri"`
		BlobName        string `json:"blobName"`
		LastUpdatedTime string `json:"lastUpdatedTime"`
		BlobSizeInBytes int64  `json:"blobSizeInBytes"`
		EnqueuedTimeUTC string `json:"enqueuedTimeUtc"`
	}
	if err := json.Unmarshal(bytes.Join(m.Data, nil), &n); err != nil {
		t.Fatalf("body %q: %v", m.Data, err)
	}
	if n.DeviceID != "d1" || n.BlobName != "d1/logs/today.txt" || n.BlobSizeInBytes != 5 || !strings.HasSuffix(n.BlobURI, "/fileupload/d1/logs/today.txt") || n.EnqueuedTimeUTC == "" {
		t.Errorf("notification %+v", n)
	}
	// Modified: back in the queue, delivered again.
	if err := rcv.ModifyMessage(ctxT(t), m, &goamqp.ModifyMessageOptions{DeliveryFailed: true}); err != nil {
		t.Fatal(err)
	}
	m2, err := rcv.Receive(ctxT(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.Join(m2.Data, nil), bytes.Join(m.Data, nil)) || m2.Header == nil || m2.Header.DeliveryCount != 1 {
		t.Errorf("after modify: %q (header %+v); want the same notification, delivery count 1", m2.Data, m2.Header)
	}
	if err := rcv.AcceptMessage(ctxT(t), m2); err != nil {
		t.Fatal(err)
	}
	testEventually(t, "the notification to be completed", func() bool {
		ns, err := e.hub.FileNotifications()
		return err == nil && len(ns) == 0
	})
	// A device token cannot read them.
	c2 := e.dial(t, viaPlain, nil)
	newCBS(t, c2).mustPut(t, hostName+"/devices/d1", deviceToken(t, hub.Identity{DeviceID: "d1"}, e.deviceKey(t, "d1"), time.Now().Add(time.Hour)))
	wantCondition(t, "device token", attachErr(t, newSession(t, c2), fileNotifications, nil), goamqp.ErrCondUnauthorizedAccess, "")
}

func (e *env) deviceKey(tb testing.TB, id string) string {
	tb.Helper()
	d, err := e.hub.GetDevice(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return d.Authentication.SymmetricKey.PrimaryKey
}
