// SPDX-License-Identifier: MIT

package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/azurite"
	"github.com/iothubemulator/iothub/service"
)

// Import/export jobs through the Go service client, against blob
// containers in Azurite (IOTHUB_E2E_AZURITE=1).

func jobEnv(t *testing.T, opts ...emulator.Option) (*emulator.Server, *service.Client, *azurite.Server, context.Context) {
	t.Helper()
	az := azurite.Start(t)
	srv := emulator.RunT(t, append([]emulator.Option{emulator.WithStorage(az.ConnectionString, az.CAFile)}, opts...)...)
	c, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return srv, c, az, ctx
}

func waitJob(t *testing.T, ctx context.Context, c *service.Client, j *service.ImportExportJob, want service.JobStatus) *service.ImportExportJob {
	t.Helper()
	got, err := c.WaitImportExportJob(ctx, j.JobID, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("WaitImportExportJob: %v", err)
	}
	if got.Status != want {
		t.Fatalf("job %s ended %s (%s), want %s", got.JobID, got.Status, got.FailureReason, want)
	}
	return got
}

// exportLines parses devices.txt into lines keyed by id or id/moduleId.
func exportLines(t *testing.T, b []byte) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("devices.txt line %q: %v", l, err)
		}
		k := m["id"].(string)
		if mid, ok := m["moduleId"].(string); ok {
			k += "/" + mid
		}
		out[k] = m
	}
	return out
}

func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func TestExportImportRoundTrip(t *testing.T) {
	srv, c, az, ctx := jobEnv(t)
	d1, err := c.CreateDevice(ctx, &service.Device{DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := service.NewTwinCollection(map[string]any{"site": "B7"})
	desired, _ := service.NewTwinCollection(map[string]any{"interval": 30})
	if _, err := c.UpdateTwin(ctx, "d1", &service.Twin{Tags: tags, Properties: service.TwinProperties{Desired: desired}}, ""); err != nil {
		t.Fatal(err)
	}
	m1, err := c.CreateModule(ctx, &service.Module{DeviceID: "d1", ModuleID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "off", Status: service.StatusDisabled}); err != nil {
		t.Fatal(err)
	}
	az.CreateContainer(t, "backup")
	az.CreateContainer(t, "nokeys")

	job, err := c.ExportDevicesToBlob(ctx, az.ContainerSASURL("backup", "rwd"), false)
	if err != nil {
		t.Fatalf("ExportDevicesToBlob: %v", err)
	}
	if job.Type != service.JobTypeExport || job.JobID == "" || job.OutputBlobContainerURI != "" {
		t.Errorf("created job %+v: want an export with an id and no URI echoed", job)
	}
	done := waitJob(t, ctx, c, job, service.JobCompleted)
	if done.StartTime.IsZero() || done.EndTime.Before(done.StartTime) || done.Progress != 100 {
		t.Errorf("finished job %+v", done)
	}
	lines := exportLines(t, az.ReadBlob(t, "backup", "devices.txt"))
	if len(lines) != 3 {
		t.Fatalf("devices.txt has %d lines, want d1, d1/m1, off: %v", len(lines), lines)
	}
	if got := dig(lines["d1"], "authentication", "symmetricKey", "primaryKey"); got != d1.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("d1's key %v, want %s", got, d1.Authentication.SymmetricKey.PrimaryKey)
	}
	if dig(lines["d1"], "tags", "site") != "B7" || dig(lines["d1"], "properties", "desired", "interval") != float64(30) {
		t.Errorf("d1's twin not exported: %v", lines["d1"])
	}
	if dig(lines["d1/m1"], "authentication", "symmetricKey", "primaryKey") != m1.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("module line %v", lines["d1/m1"])
	}
	if lines["off"]["status"] != "disabled" || lines["d1"]["eTag"] == "" || lines["d1"]["twinETag"] == "" {
		t.Errorf("status or etags missing: %v / %v", lines["off"], lines["d1"])
	}

	job, err = c.ExportDevicesToBlob(ctx, az.ContainerSASURL("nokeys", "rw"), true)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, ctx, c, job, service.JobCompleted)
	nk := exportLines(t, az.ReadBlob(t, "nokeys", "devices.txt"))
	if dig(nk["d1"], "authentication", "symmetricKey") != nil || dig(nk["d1"], "authentication", "type") != "sas" {
		t.Errorf("excludeKeysInExport left keys: %v", nk["d1"]["authentication"])
	}

	// Empty the hub and restore it from the export.
	if err := srv.Reset(); err != nil {
		t.Fatal(err)
	}
	job, err = c.ImportDevicesFromBlob(ctx, az.ContainerSASURL("backup", "r"), az.ContainerSASURL("backup", "rw"))
	if err != nil {
		t.Fatalf("ImportDevicesFromBlob: %v", err)
	}
	waitJob(t, ctx, c, job, service.JobCompleted)
	if log := az.ReadBlob(t, "backup", "importErrors.log"); len(log) != 0 {
		t.Errorf("importErrors.log: %s", log)
	}
	back, err := c.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if back.Authentication.SymmetricKey.PrimaryKey != d1.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("d1 came back with other keys")
	}
	tw, err := c.GetTwin(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := tw.Tags.Get("site"); string(v) != `"B7"` {
		t.Errorf("tags after import: %s", tw.Tags)
	}
	if v, _ := tw.Properties.Desired.Get("interval"); string(v) != "30" {
		t.Errorf("desired after import: %s", tw.Properties.Desired)
	}
	if _, err := c.GetModule(ctx, "d1", "m1"); err != nil {
		t.Errorf("module after import: %v", err)
	}
	if off, err := c.GetDevice(ctx, "off"); err != nil || off.Status != service.StatusDisabled {
		t.Errorf("disabled device after import: %+v, %v", off, err)
	}
	// Reset forgot the two exports; the import is listed.
	jobs, err := c.ListImportExportJobs(ctx)
	if err != nil || len(jobs) != 1 || jobs[0].JobID != job.JobID || jobs[0].Type != service.JobTypeImport {
		t.Fatalf("ListImportExportJobs: %+v, %v", jobs, err)
	}
}

func TestImportModesAndErrorLog(t *testing.T) {
	_, c, az, ctx := jobEnv(t)
	d1, err := c.CreateDevice(ctx, &service.Device{DeviceID: "d1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "gone1"}); err != nil {
		t.Fatal(err)
	}
	gone2, err := c.CreateDevice(ctx, &service.Device{DeviceID: "gone2"})
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{
		`{"id":"new1","importMode":"create","status":"enabled","authentication":{"symmetricKey":{"primaryKey":"bmV3MS1wcmltYXJ5LWtleS0wMTIzNDU2Nzg5","secondaryKey":"bmV3MS1zZWNvbmRhcnkta2V5LTAxMjM0NTY3ODk="}}}`,
		`{"id":"d1","importMode":"create","status":"enabled"}`,
		`{"id":"new2","status":"enabled","tags":{"from":"import"}}`,
		`{"id":"ghost","importMode":"update","status":"enabled"}`,
		`{"id":"d1","importMode":"updateIfMatchETag","eTag":"bm9wZQ==","status":"disabled"}`,
		`{"id":"d1","importMode":"updateTwin","status":"enabled","tags":{"imported":true}}`,
		`{"id":"d1","importMode":"UpdateTwinIfMatchETag","twinETag":"AAAAAAAAAAk=","status":"enabled","tags":{"x":1}}`,
		`{"id":"gone1","importMode":"delete","status":"enabled"}`,
		`{"id":"gone2","importMode":"deleteIfMatchETag","eTag":"` + gone2.ETag + `","status":"enabled"}`,
		`{"id":"nostatus","importMode":"create"}`,
		`not json`,
		``,
		`{"id":"new3","importMode":"createOrUpdateIfMatchETag","status":"disabled"}`,
		`{"id":"d1","moduleId":"m9","importMode":"create"}`,
		`{"id":"d1","importMode":"update","status":"enabled","statusReason":"updated","authentication":{"symmetricKey":{"primaryKey":"` + d1.Authentication.SymmetricKey.PrimaryKey + `","secondaryKey":"` + d1.Authentication.SymmetricKey.SecondaryKey + `"}}}`,
	}
	az.CreateContainer(t, "input")
	az.WriteBlob(t, "input", "devices.txt", []byte(strings.Join(lines, "\n")+"\n"))
	job, err := c.ImportDevicesFromBlob(ctx, az.ContainerSASURL("input", "r"), az.ContainerSASURL("input", "rw"))
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, ctx, c, job, service.JobCompleted)
	if done.FailureReason != "" {
		t.Errorf("a job with failed lines still completes without a reason, got %q", done.FailureReason)
	}
	type logLine struct {
		DeviceID    string `json:"deviceId"`
		ModuleID    string `json:"moduleId"`
		ErrorCode   int    `json:"errorCode"`
		ErrorStatus string `json:"errorStatus"`
	}
	var got []string
	for _, l := range bytes.Split(bytes.TrimSpace(az.ReadBlob(t, "input", "importErrors.log")), []byte("\n")) {
		var e logLine
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("importErrors.log line %q: %v", l, err)
		}
		if e.ErrorStatus == "" {
			t.Errorf("line without a reason: %s", l)
		}
		got = append(got, e.DeviceID+":"+strconv.Itoa(e.ErrorCode))
	}
	want := []string{"d1:409001", "ghost:404001", "d1:412001", "d1:412001", "nostatus:400004", ":400004"}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("importErrors.log has %v, want %v", got, want)
	}
	for _, id := range []string{"new1", "new2", "new3"} {
		if _, err := c.GetDevice(ctx, id); err != nil {
			t.Errorf("%s not created: %v", id, err)
		}
	}
	if n1, _ := c.GetDevice(ctx, "new1"); n1 != nil && n1.Authentication.SymmetricKey.PrimaryKey != "bmV3MS1wcmltYXJ5LWtleS0wMTIzNDU2Nzg5" {
		t.Errorf("new1 has other keys than imported")
	}
	for _, id := range []string{"gone1", "gone2"} {
		if _, err := c.GetDevice(ctx, id); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("%s not deleted: %v", id, err)
		}
	}
	tw, _ := c.GetTwin(ctx, "d1")
	if v, _ := tw.Tags.Get("imported"); string(v) != "true" {
		t.Errorf("updateTwin did not apply: %s", tw.Tags)
	}
	if _, ok := tw.Tags.Get("x"); ok {
		t.Errorf("updateTwinIfMatchETag with a stale etag applied: %s", tw.Tags)
	}
	if d, _ := c.GetDevice(ctx, "d1"); d.Status != service.StatusEnabled || d.StatusReason != "updated" {
		t.Errorf("d1 after update: %+v", d)
	}
	if _, err := c.GetModule(ctx, "d1", "m9"); err != nil {
		t.Errorf("module line not applied: %v", err)
	}
}

func TestImportExportJobErrors(t *testing.T) {
	srv, c, az, ctx := jobEnv(t)
	az.CreateContainer(t, "ccc")
	var se *service.Error
	// The hub cannot write with a read-only SAS: refused at creation.
	_, err := c.ExportDevicesToBlob(ctx, az.ContainerSASURL("ccc", "r"), false)
	if !errors.As(err, &se) || se.StatusCode != 400 || se.CodeName != "BlobContainerValidationError" || se.Code != 400008 {
		t.Fatalf("read-only SAS: got %v, want 400 BlobContainerValidationError", err)
	}
	if strings.Contains(se.Message, "sig=") {
		t.Errorf("the error leaks the SAS: %s", se.Message)
	}
	// A missing container is refused the same way.
	if _, err := c.ExportDevicesToBlob(ctx, az.ContainerSASURL("missing", "rw"), false); !errors.As(err, &se) || se.Code != 400008 {
		t.Fatalf("missing container: got %v", err)
	}
	for _, bad := range []*service.ImportExportJob{
		{Type: "backup", OutputBlobContainerURI: az.ContainerSASURL("ccc", "rw")},
		{Type: service.JobTypeExport},
		{Type: service.JobTypeImport, OutputBlobContainerURI: az.ContainerSASURL("ccc", "rw")},
		{Type: service.JobTypeExport, OutputBlobContainerURI: "ftp://x/y"},
	} {
		if _, err := c.CreateImportExportJob(ctx, bad); !errors.Is(err, service.ErrBadRequest) {
			t.Errorf("%+v: got %v, want 400", bad, err)
		}
	}
	if _, err := c.GetImportExportJob(ctx, "nope"); !errors.As(err, &se) || se.Code != 404002 {
		t.Errorf("unknown job: got %v, want 404002 JobNotFound", err)
	}
	// No devices.txt in the input container: the job fails, saying why,
	// and the registry is untouched.
	if _, err := srv.CreateDevice("keep"); err != nil {
		t.Fatal(err)
	}
	job, err := c.ImportDevicesFromBlob(ctx, az.ContainerSASURL("ccc", "r"), az.ContainerSASURL("ccc", "rw"))
	if err != nil {
		t.Fatal(err)
	}
	failed := waitJob(t, ctx, c, job, service.JobFailed)
	if !strings.Contains(failed.FailureReason, "devices.txt") || !strings.Contains(failed.FailureReason, "no device was imported") ||
		strings.Contains(failed.FailureReason, "sig=") {
		t.Errorf("failure reason %q", failed.FailureReason)
	}
	// Storage gone after the job was accepted: the export fails with the
	// storage error.
	job, err = c.ExportDevicesToBlob(ctx, az.ContainerSASURL("ccc", "rw"), false)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, ctx, c, job, service.JobCompleted)
	az.Stop()
	if _, err := c.ExportDevicesToBlob(ctx, az.ContainerSASURL("ccc", "rw"), false); !errors.As(err, &se) || se.Code != 400008 ||
		!strings.Contains(se.Message, "connect") {
		t.Errorf("storage down at creation: got %v, want 400008 naming the connection failure", err)
	}
}

// holdProxy forwards TCP to a target, or, while holding, accepts
// connections and leaves them unanswered: a blob store that stalls.
type holdProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	hold   bool
	held   []net.Conn
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, hold: true}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.hold {
				p.held = append(p.held, c)
				p.mu.Unlock()
				continue
			}
			p.mu.Unlock()
			go p.forward(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.release()
	})
	return p
}

func (p *holdProxy) forward(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
}

// release stops holding: held connections are closed, new ones forwarded.
func (p *holdProxy) release() {
	p.mu.Lock()
	p.hold = false
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, c := range held {
		c.Close()
	}
}

// via rewrites a container URL to go through the proxy.
func (p *holdProxy) via(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func TestImportExportJobQuotaCancelAndResume(t *testing.T) {
	dir := t.TempDir()
	srv, c, az, ctx := jobEnv(t, emulator.WithDataDir(dir))
	az.CreateContainer(t, "input")
	az.WriteBlob(t, "input", "devices.txt", []byte(`{"id":"resumed","status":"enabled"}`+"\n"))
	endpoint, _ := url.Parse(az.Endpoint)
	stall := newHoldProxy(t, endpoint.Host)

	job, err := c.ImportDevicesFromBlob(ctx, stall.via(t, az.ContainerSASURL("input", "r")), az.ContainerSASURL("input", "rw"))
	if err != nil {
		t.Fatal(err)
	}
	// One import/export job at a time.
	var se *service.Error
	if _, err := c.ExportDevicesToBlob(ctx, az.ContainerSASURL("input", "rw"), false); !errors.As(err, &se) || se.Code != 403003 || !errors.Is(err, service.ErrForbidden) {
		t.Fatalf("second job: got %v, want 403003 JobQuotaExceeded", err)
	}
	cancelled, err := c.CancelImportExportJob(ctx, job.JobID)
	if err != nil || cancelled.Status != service.JobCancelled {
		t.Fatalf("cancel: %+v, %v", cancelled, err)
	}
	if again, err := c.GetImportExportJob(ctx, job.JobID); err != nil || again.Status != service.JobCancelled || again.EndTime.IsZero() {
		t.Fatalf("after cancel: %+v, %v", again, err)
	}

	// A job running when the emulator stops goes on after the restart.
	job, err = c.ImportDevicesFromBlob(ctx, stall.via(t, az.ContainerSASURL("input", "r")), az.ContainerSASURL("input", "rw"))
	if err != nil {
		t.Fatalf("a new job after the cancel: %v", err)
	}
	for st := service.JobEnqueued; st != service.JobRunning; {
		j, err := c.GetImportExportJob(ctx, job.JobID)
		if err != nil {
			t.Fatal(err)
		}
		st = j.Status
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	stall.release()
	srv2 := emulator.RunT(t, emulator.WithStorage(az.ConnectionString, az.CAFile), emulator.WithDataDir(dir))
	c2, err := service.NewFromConnectionString(srv2.ConnectionString(), service.WithRootCAs(srv2.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, ctx, c2, job, service.JobCompleted)
	if _, err := c2.GetDevice(ctx, "resumed"); err != nil {
		t.Fatalf("the resumed import did not create its device: %v", err)
	}
}
