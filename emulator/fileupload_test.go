// SPDX-License-Identifier: MIT

package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/azurite"
	"github.com/iothubemulator/iothub/service"
)

// File upload end to end: the emulator signs the SAS, the Go device client
// writes the blob to Azurite (a real blob store that checks the
// signature), notifies the hub, and the Go service client receives the
// notification. Azurite runs when IOTHUB_E2E_AZURITE=1.

type uploadEnv struct {
	srv *emulator.Server
	az  *azurite.Server
	svc *service.Client
	ctx context.Context
}

func newUploadEnv(t *testing.T, opts ...emulator.Option) *uploadEnv {
	t.Helper()
	az := azurite.Start(t)
	srv := emulator.RunT(t, append([]emulator.Option{emulator.WithStorage(az.ConnectionString, az.CAFile)}, opts...)...)
	svc, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return &uploadEnv{srv: srv, az: az, svc: svc, ctx: ctx}
}

func (e *uploadEnv) device(t *testing.T, id string, extra ...device.Option) *device.Client {
	t.Helper()
	cs, err := e.srv.CreateDevice(id)
	if err != nil {
		t.Fatal(err)
	}
	return uploadClient(t, e.srv, e.az, cs, extra...)
}

func uploadClient(t *testing.T, srv *emulator.Server, az *azurite.Server, cs string, extra ...device.Option) *device.Client {
	t.Helper()
	opts := append([]device.Option{device.WithRootCAs(srv.CAPool()), device.WithHTTPSHost(srv.HTTPSHost()), device.WithoutRetries()}, extra...)
	if az != nil {
		opts = append(opts, device.WithStorageHTTPClient(az.HTTPClient()))
	}
	c, err := device.NewFromConnectionString(cs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestFileUploadEndToEnd(t *testing.T) {
	e := newUploadEnv(t)
	dc := e.device(t, "cam+1")
	small := []byte("hello, blob")
	if err := dc.UploadToBlob(e.ctx, "logs/2024 05/ü.txt", bytes.NewReader(small), int64(len(small))); err != nil {
		t.Fatalf("UploadToBlob: %v", err)
	}
	if got := e.az.ReadBlob(t, emulator.DefaultFileUploadContainer, "cam+1/logs/2024 05/ü.txt"); !bytes.Equal(got, small) {
		t.Fatalf("blob holds %q, want %q", got, small)
	}
	// An upload of unknown length goes in blocks.
	big := bytes.Repeat([]byte("0123456789abcdef"), 5<<16) // 5 MiB
	if err := dc.UploadToBlob(e.ctx, "big.bin", io.MultiReader(bytes.NewReader(big)), -1); err != nil {
		t.Fatalf("UploadToBlob of unknown length: %v", err)
	}
	if got := e.az.ReadBlob(t, emulator.DefaultFileUploadContainer, "cam+1/big.bin"); !bytes.Equal(got, big) {
		t.Fatalf("big blob holds %d bytes, want %d", len(got), len(big))
	}

	r := e.svc.FileNotificationReceiver()
	defer r.Close()
	want := []struct {
		name string
		size int64
	}{{"cam+1/logs/2024 05/ü.txt", int64(len(small))}, {"cam+1/big.bin", int64(len(big))}}
	for _, w := range want {
		n, err := r.Receive(e.ctx)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if n.DeviceID != "cam+1" || n.BlobName != w.name || n.BlobSizeInBytes != w.size {
			t.Errorf("notification %+v, want device cam+1, blob %q of %d bytes", n, w.name, w.size)
		}
		if !strings.HasPrefix(n.BlobURI, e.az.Endpoint+"/fileupload/cam+1/") {
			t.Errorf("blobUri %q is not in the upload container at %s", n.BlobURI, e.az.Endpoint)
		}
		if n.LastUpdatedTime.IsZero() || n.EnqueuedTime.IsZero() {
			t.Errorf("notification without times: %+v", n)
		}
		if err := r.Complete(e.ctx, n); err != nil {
			t.Fatalf("Complete: %v", err)
		}
	}
	// The outcomes travel over AMQP; the hub applies each when it arrives.
	deadline := time.Now().Add(10 * time.Second)
	for left, _ := e.srv.FileNotifications(); len(left) != 0; left, _ = e.srv.FileNotifications() {
		if time.Now().After(deadline) {
			t.Fatalf("%d notifications left after completing all", len(left))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := e.srv.ActiveFileUploads("cam+1"); n != 0 {
		t.Errorf("%d uploads still active after notifying", n)
	}
}

func TestFileUploadSASIsScopedToTheBlob(t *testing.T) {
	e := newUploadEnv(t)
	dc := e.device(t, "d1")
	info, err := dc.GetStorageInfoForBlob(e.ctx, "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if info.ContainerName != emulator.DefaultFileUploadContainer || info.BlobName != "d1/a.txt" ||
		!strings.HasPrefix(info.SASToken, "?") || !strings.Contains(info.SASToken, "sp=rw") || info.CorrelationID == "" {
		t.Fatalf("storage info %+v", info)
	}
	// The SAS is for d1/a.txt only: another blob is refused by storage.
	other := strings.Replace(info.BlobURL(), "/d1/a.txt?", "/d1/b.txt?", 1)
	req, _ := http.NewRequest(http.MethodPut, other, strings.NewReader("x"))
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	resp, err := e.az.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("write to another blob with the SAS: got %d, want 403", resp.StatusCode)
	}
}

func TestFileUploadWithoutStorage(t *testing.T) {
	srv := emulator.RunT(t)
	cs, err := srv.CreateDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	dc := uploadClient(t, srv, nil, cs)
	_, err = dc.GetStorageInfoForBlob(context.Background(), "a.txt")
	var de *device.Error
	if !errors.As(err, &de) || de.StatusCode != 400 || de.Code != 400022 || !errors.Is(err, device.ErrBadRequest) ||
		!strings.Contains(de.Message, "--storage-connection-string") {
		t.Fatalf("got %v, want 400 400022 naming the flag", err)
	}
	err = dc.NotifyBlobUploadStatus(context.Background(), "x", true, 200, "")
	if !errors.As(err, &de) || de.Code != 400022 {
		t.Fatalf("notify: got %v, want 400022", err)
	}
}

func TestFileUploadActiveLimitAndExpiry(t *testing.T) {
	e := newUploadEnv(t)
	e.srv.SetTime(time.Now())
	// The test moves the hub's clock two hours on: the device's tokens
	// must outlive that.
	dc := e.device(t, "d1", device.WithTokenLifetime(24*time.Hour))
	var first *device.StorageInfo
	for i := 0; i < 10; i++ {
		info, err := dc.GetStorageInfoForBlob(e.ctx, "f.txt")
		if err != nil {
			t.Fatalf("upload %d: %v", i+1, err)
		}
		if first == nil {
			first = info
		}
	}
	_, err := dc.GetStorageInfoForBlob(e.ctx, "f.txt")
	var de *device.Error
	if !errors.As(err, &de) || de.Code != 403006 || !errors.Is(err, device.ErrForbidden) {
		t.Fatalf("11th upload: got %v, want 403006", err)
	}
	// A failed upload reported frees its place; no notification follows.
	if err := dc.NotifyBlobUploadStatus(e.ctx, first.CorrelationID, false, 500, "disk full"); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.GetStorageInfoForBlob(e.ctx, "f.txt"); err != nil {
		t.Fatalf("after a notification: %v", err)
	}
	// Notifying twice names a correlation id the hub no longer knows.
	err = dc.NotifyBlobUploadStatus(e.ctx, first.CorrelationID, false, 500, "again")
	if !errors.As(err, &de) || de.Code != 400015 {
		t.Fatalf("second notification: got %v, want 400015", err)
	}
	// The SAS lifetime (1 h) ends every upload.
	e.srv.FastForward(time.Hour)
	if n, _ := e.srv.ActiveFileUploads("d1"); n != 0 {
		t.Fatalf("%d uploads active after the SAS lifetime", n)
	}
	info, err := dc.GetStorageInfoForBlob(e.ctx, "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	e.srv.FastForward(time.Hour)
	err = dc.NotifyBlobUploadStatus(e.ctx, info.CorrelationID, true, 201, "")
	if !errors.As(err, &de) || de.Code != 400016 {
		t.Fatalf("late notification: got %v, want 400016 ExpiredFileUploadCorrelationId", err)
	}
	if ns, _ := e.srv.FileNotifications(); len(ns) != 0 {
		t.Errorf("notifications without a successful upload: %+v", ns)
	}
}

func TestFileUploadNotifySuccessWithoutBlob(t *testing.T) {
	e := newUploadEnv(t)
	dc := e.device(t, "d1")
	info, err := dc.GetStorageInfoForBlob(e.ctx, "never.txt")
	if err != nil {
		t.Fatal(err)
	}
	err = dc.NotifyBlobUploadStatus(e.ctx, info.CorrelationID, true, 201, "")
	var de *device.Error
	if !errors.As(err, &de) || de.Code != 400020 || !strings.Contains(de.Message, "does not exist") {
		t.Fatalf("got %v, want 400020 saying the blob does not exist", err)
	}
	// The upload is still open: the device can report the failure.
	if err := dc.NotifyBlobUploadStatus(e.ctx, info.CorrelationID, false, 404, "lost"); err != nil {
		t.Fatalf("failure notification after a refused success: %v", err)
	}
	// With storage gone, a success cannot be checked: 400020 with the reason.
	info, err = dc.GetStorageInfoForBlob(e.ctx, "late.txt")
	if err != nil {
		t.Fatal(err)
	}
	e.az.Stop()
	err = dc.NotifyBlobUploadStatus(e.ctx, info.CorrelationID, true, 201, "")
	if !errors.As(err, &de) || de.Code != 400020 || !strings.Contains(de.Message, "could not read") {
		t.Fatalf("storage down: got %v, want 400020 saying storage could not be read", err)
	}
	if strings.Contains(de.Message, "sig=") {
		t.Errorf("the error leaks a signature: %s", de.Message)
	}
	// The device's own upload fails at storage, and it says so.
	err = dc.UploadToBlob(e.ctx, "x.txt", strings.NewReader("x"), 1)
	if err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("upload with storage down: got %v", err)
	}
}

func TestFileUploadNotificationsOff(t *testing.T) {
	e := newUploadEnv(t, func(o *emulator.Options) { o.DisableFileUploadNotifications = true })
	dc := e.device(t, "d1")
	if err := dc.UploadToBlob(e.ctx, "a.txt", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if ns, _ := e.srv.FileNotifications(); len(ns) != 0 {
		t.Fatalf("notifications are off, got %+v", ns)
	}
}

func TestFileNotificationSettlement(t *testing.T) {
	e := newUploadEnv(t)
	e.srv.SetTime(time.Now())
	dc := e.device(t, "d1")
	if err := dc.UploadToBlob(e.ctx, "a.txt", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	r := e.svc.FileNotificationReceiver()
	n1, err := r.Receive(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Locked: nothing else to receive now.
	short, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	if n, err := r.Receive(short); err == nil {
		t.Fatalf("received a locked notification again: %+v", n)
	}
	cancel()
	if err := r.Abandon(e.ctx, n1); err != nil {
		t.Fatal(err)
	}
	n2, err := r.Receive(e.ctx)
	if err != nil || n2.BlobName != n1.BlobName {
		t.Fatalf("after abandon: %+v, %v", n2, err)
	}
	if ns, _ := e.srv.FileNotifications(); len(ns) != 1 || ns[0].DeliveryCount != 2 {
		t.Fatalf("queue after two deliveries: %+v", ns)
	}
	// The abandoned lock is void.
	var se *service.Error
	if err := r.Complete(e.ctx, n1); !errors.As(err, &se) || se.StatusCode != 412 {
		t.Fatalf("complete with a stale lock: got %v, want 412", err)
	}
	// A lock that runs out returns the notification.
	e.srv.FastForward(2 * time.Minute)
	n3, err := r.Receive(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reject(e.ctx, n3); err != nil {
		t.Fatal(err)
	}
	// The outcome travels over AMQP; the hub applies it when it arrives.
	deadline := time.Now().Add(10 * time.Second)
	for ns, _ := e.srv.FileNotifications(); len(ns) != 0; ns, _ = e.srv.FileNotifications() {
		if time.Now().After(deadline) {
			t.Fatalf("rejected notification still queued: %+v", ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = r.Close()
	if _, err := r.Receive(e.ctx); !errors.Is(err, service.ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}

func TestFileUploadSurvivesRestart(t *testing.T) {
	az := azurite.Start(t)
	dir := t.TempDir()
	srv := emulator.RunT(t, emulator.WithStorage(az.ConnectionString, az.CAFile), emulator.WithDataDir(dir))
	cs, err := srv.CreateDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dc := uploadClient(t, srv, az, cs)
	info, err := dc.GetStorageInfoForBlob(ctx, "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	az.WriteBlob(t, info.ContainerName, info.BlobName, []byte("written before the restart"))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv2 := emulator.RunT(t, emulator.WithStorage(az.ConnectionString, az.CAFile), emulator.WithDataDir(dir))
	dc2 := uploadClient(t, srv2, az, cs)
	if err := dc2.NotifyBlobUploadStatus(ctx, info.CorrelationID, true, 201, ""); err != nil {
		t.Fatalf("notification after a restart: %v", err)
	}
	ns, err := srv2.FileNotifications()
	if err != nil || len(ns) != 1 || ns[0].BlobSizeInBytes != int64(len("written before the restart")) {
		t.Fatalf("notifications after a restart: %+v, %v", ns, err)
	}
}

// TestFileUploadFromConfigFile needs no storage: the hub signs the SAS
// without asking storage (it only tries to create the container, and logs
// when it cannot).
func TestFileUploadFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/config.json"
	cfg := `{"fileUpload": {"storageConnectionString": "UseDevelopmentStorage=true", "containerName": "from-config", "sasTtl": "10m"}}`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := emulator.LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := emulator.RunT(t, emulator.WithConfig(c), func(o *emulator.Options) { o.FileUploadContainer = "from-flag" })
	srv.SetTime(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	cs, err := srv.CreateDevice("d1")
	if err != nil {
		t.Fatal(err)
	}
	dc := uploadClient(t, srv, nil, cs, device.WithTokenLifetime(20*365*24*time.Hour))
	info, err := dc.GetStorageInfoForBlob(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if info.ContainerName != "from-flag" || info.HostName != "127.0.0.1:10000/devstoreaccount1" ||
		!strings.Contains(info.SASToken, "se=2030-01-02T03%3A14%3A05Z") {
		t.Fatalf("storage info %+v: want the flag's container, Azurite's default host and a 10-minute SAS on the hub's clock", info)
	}
}
