// SPDX-License-Identifier: MIT

package ui_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/iothubemulator/iothub/device"
	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// The dashboard's browser tests drive Debian's chromium (headless) with
// chromedp against an in-process emulator. They run when
// IOTHUB_E2E_BROWSER=1 (make test and CI set it) and skip otherwise, so a
// plain go test ./... needs no browser; when turned on without chromium
// they fail, saying how to install it.
//
// IOTHUB_UI_SCREENSHOTS names a directory for a screenshot of each page
// (default: a temporary directory, removed after the test).

const waitLimit = 20 * time.Second

func chromiumPath(t *testing.T) string {
	t.Helper()
	if v := os.Getenv("IOTHUB_E2E_BROWSER"); v == "" || v == "0" {
		t.Skip("the dashboard's browser tests are off: install chromium (`apt-get install -y chromium`), then set IOTHUB_E2E_BROWSER=1 (make test does)")
	}
	if p := os.Getenv("IOTHUB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("IOTHUB_E2E_BROWSER is set but chromium is not installed: install it with `apt-get install -y chromium` " +
		"(Debian; or point IOTHUB_CHROMIUM at a Chrome/Chromium binary)")
	return ""
}

type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string // https://127.0.0.1:port/ui/
	shots string

	exceptions *exceptionLog
}

type exceptionLog struct {
	mu   sync.Mutex
	list []string
}

// at returns the browser for a subtest: failures go to t.
func (b *browser) at(t *testing.T) *browser {
	c := *b
	c.t = t
	return &c
}

// spkiPin is the base64 SHA-256 of the server certificate's public key:
// Chromium then accepts this one certificate without trusting our CA for
// every site.
func spkiPin(t *testing.T, srv *emulator.Server) string {
	t.Helper()
	conn, err := tls.Dial("tcp", srv.HTTPSAddr(), srv.TLSConfig())
	if err != nil {
		t.Fatalf("dial emulator: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func newBrowser(t *testing.T, srv *emulator.Server) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// No UserDataDir: chromedp makes a fresh one, passes it with
		// --user-data-dir (which the SPKI flag needs) and removes it.
		chromedp.WindowSize(1280, 900),
		// This machine's network is closed: without these Chromium's own
		// background connections are refused and slow everything down.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", spkiPin(t, srv)),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t, exceptions: &exceptionLog{}}
	// An uncaught exception in the page fails the test: the dashboard
	// handles every error it expects.
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			b.exceptions.mu.Lock()
			d := e.ExceptionDetails
			desc := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				desc = d.Exception.Description
			}
			b.exceptions.list = append(b.exceptions.list, fmt.Sprintf("%s (%s:%d:%d)", desc, d.URL, d.LineNumber+1, d.ColumnNumber+1))
			b.exceptions.mu.Unlock()
		}
	}))
	t.Cleanup(func() {
		b.exceptions.mu.Lock()
		for _, e := range b.exceptions.list {
			t.Errorf("uncaught exception in the page: %s", e)
		}
		b.exceptions.mu.Unlock()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium (%s): %v", exe, err)
	}
	shots := os.Getenv("IOTHUB_UI_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b.ctx, b.base, b.shots = ctx, "https://"+srv.HTTPSAddr()+"/ui/", shots
	return b
}

// pageText is what the failure messages show of the page.
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, b.pageText())
	}
}

// eval runs an expression and decodes its value.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	expr := `(() => { try { return !!(` + cond + `); } catch (e) { return false; } })()`
	deadline := time.Now().Add(waitLimit)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waiting for %s (%s): not true after %v (last error %v)\npage:\n%s", what, cond, waitLimit, err, b.pageText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, `(document.querySelector(`+strconv.Quote(sel)+`) || {}).textContent || ""`)
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

func (b *browser) setValue(sel, v string) {
	b.t.Helper()
	b.do("set "+sel, chromedp.SetValue(chromedp.CSS(sel), v))
}

// choose sets a select's value and fires change, as a user's pick does.
func (b *browser) choose(sel, v string) {
	b.t.Helper()
	eval[bool](b, `(() => { const s = document.querySelector(`+strconv.Quote(sel)+`); s.value = `+strconv.Quote(v)+
		`; s.dispatchEvent(new Event('change')); return s.value === `+strconv.Quote(v)+`; })()`)
}

// goTo opens a dashboard address (a hash) without reloading the page and
// waits until the page for it is shown.
func (b *browser) goTo(hash, page string) {
	b.t.Helper()
	eval[bool](b, `(location.hash = `+strconv.Quote(hash)+`, true)`)
	b.waitFor("page "+page, `document.body.dataset.page === `+strconv.Quote(page)+` && document.body.dataset.hash === location.hash`)
}

func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, waitLimit)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// formError is the inline error of a form, waited for.
func (b *browser) formError(form, want string) string {
	b.t.Helper()
	sel := form + ` .msg.error`
	b.waitFor("error in "+form, `document.querySelector(`+strconv.Quote(sel)+`).textContent.includes(`+strconv.Quote(want)+`)`)
	return b.text(sel)
}

func q(s string) string { return strconv.Quote(s) }

// TestDashboard walks through the dashboard as a developer would, with a
// real device connected through our Go client.
func TestDashboard(t *testing.T) {
	srv := emulator.RunT(t)
	b := newBrowser(t, srv)
	defer func() {
		if t.Failed() {
			t.Logf("screenshots: %s", b.shots)
		}
	}()

	// Loopback: the page is offered the owner connection string and signs in.
	b.do("open dashboard", chromedp.Navigate(b.base))
	b.waitFor("signed in", `!document.getElementById('nav').hidden && document.body.dataset.page === 'devices'`)
	if who := b.text("#who"); who != "iothubowner@localhost" {
		t.Errorf("signed in as %q, want iothubowner@localhost", who)
	}

	t.Run("tokens match internal/sas", func(t *testing.T) {
		b := b.at(t)
		key := emulator.WellKnownOwnerKey
		for _, res := range []string{"localhost", "localhost/devices/a b!'()*#?%"} {
			want, err := sas.NewToken(res, "iothubowner", key, time.Unix(1700000000, 0))
			if err != nil {
				t.Fatal(err)
			}
			got := eval[string](b, `import('./js/hub.js').then(m => m.sasToken(`+q(res)+`, 'iothubowner', `+q(key)+`, 1700000000))`)
			if got != want {
				t.Errorf("browser token for %q:\n got %s\nwant %s", res, got, want)
			}
		}
	})

	t.Run("sign in by hand", func(t *testing.T) {
		b := b.at(t)
		b.click("#signout")
		b.waitFor("login form", `document.querySelector('#login') !== null`)
		// A policy without every right is refused with the hub's message.
		b.setValue(`#login textarea`, srv.PolicyConnectionString("service"))
		b.click(`#login button[type=submit]`)
		if msg := b.formError("#login", "lacks"); !strings.Contains(msg, "401") {
			t.Errorf("login error %q, want the hub's 401", msg)
		}
		b.setValue(`#login textarea`, "HostName=localhost;SharedAccessKeyName=iothubowner")
		b.click(`#login button[type=submit]`)
		b.formError("#login", "no SharedAccessKey")
		b.shot("login")
		b.setValue(`#login textarea`, srv.ConnectionString())
		b.click(`#login button[type=submit]`)
		b.waitFor("signed in", `!document.getElementById('nav').hidden && document.body.dataset.page === 'devices'`)
		if got := eval[string](b, `sessionStorage.getItem('iothub.connectionString')`); got != srv.ConnectionString() {
			t.Errorf("sessionStorage holds %q, want the connection string", got)
		}
	})

	const id = "thermo-1"
	t.Run("create device", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/devices", "devices")
		b.setValue(`#create-device input[name=deviceId]`, "bad id")
		b.click(`#create-device button[type=submit]`)
		msg := b.formError("#create-device", "ArgumentInvalid")
		if !strings.Contains(msg, "400") || !strings.Contains(msg, `' '`) {
			t.Errorf("bad id error %q, want 400 ArgumentInvalid naming the space", msg)
		}
		if _, err := srv.Device("bad id"); err == nil {
			t.Error("the hub has a device 'bad id' after the refused create")
		}
		b.setValue(`#create-device input[name=deviceId]`, id)
		b.click(`#create-device button[type=submit]`)
		b.waitFor("device row", `document.querySelector('tr[data-device-id="`+id+`"]')?.dataset.state === 'Disconnected'`)
		if _, err := srv.Device(id); err != nil {
			t.Fatalf("device not in the hub: %v", err)
		}
		// The same id again: 409 from the hub, shown inline.
		b.setValue(`#create-device input[name=deviceId]`, id)
		b.click(`#create-device button[type=submit]`)
		b.formError("#create-device", "DeviceAlreadyExists")
	})

	// The connection string comes from the page, as a user would copy it.
	b.goTo("#/devices/"+id, "identity")
	b.click(`button[data-action=show][data-which=primaryKey]`)
	b.waitFor("connection string shown", `document.querySelector('input.connstring[data-which=primaryKey]').value.includes('SharedAccessKey=') && !document.querySelector('input.connstring[data-which=primaryKey]').value.includes('•')`)
	cs := eval[string](b, `document.querySelector('input.connstring[data-which=primaryKey]').value`)
	want, err := srv.DeviceConnectionString(id)
	if err != nil {
		t.Fatal(err)
	}
	if cs != want {
		t.Fatalf("page shows connection string %q, want %q", cs, want)
	}
	b.shot("device-identity")

	t.Run("modules", func(t *testing.T) {
		b := b.at(t)
		b.setValue(`#create-module input[name=moduleId]`, "no/slash")
		b.click(`#create-module button[type=submit]`)
		b.formError("#modules-card", "400")
		b.setValue(`#create-module input[name=moduleId]`, "filter")
		b.click(`#create-module button[type=submit]`)
		b.waitFor("module row", `document.querySelector('#modules tr[data-module-id=filter] a') !== null`)
		b.click(`#modules tr[data-module-id=filter] a`)
		b.waitFor("module page", `document.body.dataset.page === 'identity' && location.hash.endsWith('/modules/filter')`)
		b.click(`button[data-action=show][data-which=primaryKey]`)
		b.waitFor("module connection string", `document.querySelector('input.connstring[data-which=primaryKey]').value.includes(';ModuleId=filter;SharedAccessKey=')`)
		mcs := eval[string](b, `document.querySelector('input.connstring[data-which=primaryKey]').value`)
		if _, err := device.NewFromConnectionString(mcs, device.WithRootCAs(srv.CAPool())); err != nil {
			t.Errorf("module connection string %q: %v", mcs, err)
		}
		b.shot("module")
		b.goTo("#/devices/"+id, "identity")
	})

	desired := make(chan device.Properties, 10)
	c2d := make(chan *device.Message, 10)
	dev, err := device.NewFromConnectionString(cs, device.WithRootCAs(srv.CAPool()))
	if err != nil {
		t.Fatal(err)
	}
	dev.OnDesiredPropertiesUpdate(func(p device.Properties, _ int64) { desired <- p })
	dev.OnMessage(func(m *device.Message) { c2d <- m })
	dev.HandleMethod("reboot", func(ctx context.Context, r *device.MethodRequest) (int, any) {
		var in map[string]any
		_ = json.Unmarshal(r.Payload, &in)
		return 200, map[string]any{"result": "rebooting", "delay": in["delay"]}
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := dev.Connect(ctx); err != nil {
		t.Fatalf("device connect: %v", err)
	}
	defer dev.Close()

	t.Run("connected", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/devices", "devices")
		b.waitFor("device connected", `document.querySelector('tr[data-device-id="`+id+`"]')?.dataset.state === 'Connected'`)
		b.shot("devices")
	})

	t.Run("twin", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/devices/"+id+"?tab=twin", "identity")
		b.waitFor("twin editor", `document.querySelector('#twin-edit input[name=etag]').value !== ''`)
		before, _ := srv.Twin(id, "")

		// Not JSON: the hub's message, and the twin is untouched.
		b.setValue(`#twin-edit textarea[name=patch]`, `{"targetTemperature": `)
		b.click(`#twin-edit button[type=submit]`)
		msg := b.formError("#twin-edit", "not valid JSON")
		if !strings.Contains(msg, "400") {
			t.Errorf("invalid JSON error %q, want 400", msg)
		}
		if after, _ := srv.Twin(id, ""); string(after) != string(before) {
			t.Errorf("twin changed after a refused patch:\n%s\n%s", before, after)
		}

		b.setValue(`#twin-edit textarea[name=patch]`, `{"targetTemperature": 22.5}`)
		b.click(`#twin-edit button[type=submit]`)
		b.waitFor("twin updated", `document.querySelector('#twin-edit .msg.ok')?.textContent.includes('Updated')`)
		select {
		case p := <-desired:
			if p["targetTemperature"] != 22.5 {
				t.Errorf("device got desired %v, want targetTemperature 22.5", p)
			}
		case <-time.After(waitLimit):
			t.Fatal("the device got no desired-property update")
		}
		b.waitFor("desired shown", `document.querySelector('[data-part=desired] pre').textContent.includes('"targetTemperature": 22.5')`)

		// Someone else changes desired: the view follows, the editor is
		// marked stale, and an update with its etag gets the hub's 412.
		svc, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.UpdateTwin(ctx, id, &service.Twin{Properties: service.TwinProperties{Desired: service.TwinCollection(`{"mode": "eco"}`)}}, "*"); err != nil {
			t.Fatal(err)
		}
		b.waitFor("desired shown", `document.querySelector('[data-part=desired] pre').textContent.includes('"mode": "eco"')`)
		b.waitFor("editor marked stale", `!document.querySelector('#twin-edit .msg.warn').hidden`)
		b.setValue(`#twin-edit textarea[name=patch]`, `{"fanSpeed": 3}`)
		b.click(`#twin-edit button[type=submit]`)
		if msg := b.formError("#twin-edit", "PreconditionFailed"); !strings.Contains(msg, "412") {
			t.Errorf("stale etag error %q, want 412", msg)
		}
		if tw, _ := srv.Twin(id, ""); strings.Contains(string(tw), "fanSpeed") {
			t.Errorf("twin took a patch with a stale etag: %s", tw)
		}
		b.shot("twin-conflict")

		// Reloaded, the editor has the current etag; tags this time.
		b.click(`#twin-edit .msg.warn button`)
		b.waitFor("editor current", `document.querySelector('#twin-edit .msg.warn').hidden`)
		b.choose(`#twin-edit select[name=section]`, "tags")
		b.setValue(`#twin-edit textarea[name=patch]`, `{"site": "B7"}`)
		b.click(`#twin-edit button[type=submit]`)
		b.waitFor("tags shown", `document.querySelector('[data-part=tags] pre').textContent.includes('"site": "B7"')`)

		// The device's reported properties appear live, with $metadata.
		if _, err := dev.UpdateReportedProperties(ctx, map[string]any{"firmware": "1.2.3"}); err != nil {
			t.Fatal(err)
		}
		b.waitFor("reported shown", `document.querySelector('[data-part=reported] pre').textContent.includes('"firmware": "1.2.3"')`)
		if !strings.Contains(b.text(`[data-part=reported] pre`), "$metadata") {
			t.Error("reported properties shown without $metadata")
		}
		b.shot("twin")
	})

	t.Run("methods", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/devices/"+id+"?tab=methods", "identity")
		b.setValue(`#method-invoke input[name=methodName]`, "reboot")
		b.setValue(`#method-invoke textarea[name=payload]`, `{"delay": 5`)
		b.click(`#method-invoke button[type=submit]`)
		b.formError("#method-invoke", "not valid JSON")

		b.setValue(`#method-invoke input[name=responseTimeout]`, "1")
		b.setValue(`#method-invoke textarea[name=payload]`, `{"delay": 5}`)
		b.click(`#method-invoke button[type=submit]`)
		b.formError("#method-invoke", "responseTimeoutInSeconds")

		b.setValue(`#method-invoke input[name=responseTimeout]`, "10")
		b.click(`#method-invoke button[type=submit]`)
		b.waitFor("method answer", `document.querySelector('.method-status')?.textContent === '200'`)
		if p := b.text(`.method-payload`); !strings.Contains(p, `"rebooting"`) || !strings.Contains(p, `"delay": 5`) {
			t.Errorf("method payload shown %q", p)
		}
		b.waitFor("history row", `document.querySelector('table.methods tr[data-method=reboot]')?.textContent.includes('status 200')`)
		if calls := srv.MethodCalls(id); len(calls) != 1 {
			t.Errorf("hub recorded %d calls, want 1 (refused forms must not call)", len(calls))
		}
		b.shot("methods")
	})

	t.Run("cloud-to-device", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/devices/"+id+"?tab=messages", "identity")
		b.setValue(`#c2d-send textarea[name=body]`, "hello")
		b.setValue(`#c2d-send textarea[name=properties]`, "color=red")
		b.setValue(`#c2d-send input[name=messageId]`, "m-1")
		b.setValue(`#c2d-send input[name=ttl]`, "soon")
		b.choose(`#c2d-send select[name=ack]`, "full")
		b.click(`#c2d-send button[type=submit]`)
		b.formError("#c2d-send", "iothub-ttl")
		b.setValue(`#c2d-send input[name=ttl]`, "600")
		b.click(`#c2d-send button[type=submit]`)
		select {
		case m := <-c2d:
			if string(m.Body) != "hello" || m.Properties["color"] != "red" || m.MessageID != "m-1" {
				t.Errorf("device got %q %v id %q", m.Body, m.Properties, m.MessageID)
			}
		case <-time.After(waitLimit):
			t.Fatal("the device got no C2D message")
		}
		b.waitFor("feedback", `document.querySelector('#c2d-feedback tr[data-status=Success]')?.textContent.includes('m-1')`)
		b.shot("c2d")

		// A device that is not connected keeps the message in its queue.
		if _, err := srv.CreateDevice("thermo-2"); err != nil {
			t.Fatal(err)
		}
		b.goTo("#/devices/thermo-2?tab=messages", "identity")
		b.setValue(`#c2d-send textarea[name=body]`, "later")
		b.setValue(`#c2d-send input[name=messageId]`, "m-2")
		b.click(`#c2d-send button[type=submit]`)
		b.waitFor("queued", `document.querySelector('#c2d-queue tbody tr')?.textContent.includes('m-2')`)
		if p, _ := srv.PendingC2D("thermo-2"); len(p) != 1 || p[0].MessageID != "m-2" {
			t.Errorf("hub queue of thermo-2: %+v", p)
		}
		b.shot("c2d-queue")
		b.click("#c2d-purge")
		b.click("#c2d-purge") // confirm
		b.waitFor("purged", `document.querySelector('#c2d-queue').closest('.card').querySelector('.msg.ok')?.textContent === 'Purged 1 message.'`)
		b.waitFor("queue empty", `document.querySelectorAll('#c2d-queue tbody tr').length === 0`)
		if p, _ := srv.PendingC2D("thermo-2"); len(p) != 0 {
			t.Errorf("hub queue of thermo-2 after purge: %+v", p)
		}
	})

	t.Run("twin history", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/devices/"+id+"?tab=history", "identity")
		b.waitFor("history rows", `document.querySelectorAll('#twin-history tbody tr').length >= 3`)
		for _, section := range []string{"desired", "tags", "reported"} {
			if n := eval[int](b, `document.querySelectorAll('#twin-history tr[data-section=`+section+`]').length`); n == 0 {
				t.Errorf("no %s change in the twin history", section)
			}
		}
		b.shot("twin-history")
	})

	t.Run("telemetry", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/telemetry?device="+url.QueryEscape(id), "telemetry")
		b.waitFor("stream live", `document.querySelector('.live').dataset.live === 'live'`)
		temps := []string{"20.5", "21.25", "21", "22.5", "22"}
		for i, temp := range temps {
			body := fmt.Sprintf(`{"temperature": %s, "env": {"humidity": %d}}`, temp, 40+i)
			if err := dev.SendMessage(ctx, &device.Message{Body: []byte(body), ContentType: "application/json", ContentEncoding: "utf-8",
				Properties: map[string]string{"alert": "no"}}); err != nil {
				t.Fatal(err)
			}
		}
		b.waitFor("five messages", `document.querySelectorAll('#stream tbody tr').length === 5`)
		if row := b.text(`#stream tbody tr`); !strings.Contains(row, "alert=no") || !strings.Contains(row, `"temperature":22,`) {
			t.Errorf("newest stream row %q lacks the property or body", row)
		}
		b.choose(`select[name=field]`, "env.humidity")
		b.choose(`select[name=field]`, "temperature")
		b.waitFor("chart points", `document.querySelectorAll('svg.chart circle.pt').length === 5`)
		got := eval[[]string](b, `[...document.querySelectorAll('svg.chart circle.pt')].map(c => c.dataset.value)`)
		if strings.Join(got, ",") != strings.Join(temps, ",") {
			t.Errorf("chart values %v, want %v", got, temps)
		}

		b.click("#pause")
		b.waitFor("paused", `document.querySelector('.live').dataset.live === 'paused'`)
		if err := dev.SendMessage(ctx, &device.Message{Body: []byte(`{"temperature": 23.75}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.WaitMessages(id, 6, waitLimit); err != nil {
			t.Fatal(err)
		}
		// The message is recorded; a paused page must not show it.
		time.Sleep(500 * time.Millisecond)
		if n := eval[int](b, `document.querySelectorAll('#stream tbody tr').length`); n != 5 {
			t.Errorf("paused stream shows %d rows, want 5", n)
		}
		b.click("#pause")
		b.waitFor("resumed with the new point", `[...document.querySelectorAll('svg.chart circle.pt')].some(c => c.dataset.value === '23.75')`)
		b.shot("telemetry")
	})

	t.Run("method history", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/methods", "methods")
		b.waitFor("call listed", `document.querySelector('table.methods tr[data-method=reboot]')?.textContent.includes('`+id+`')`)
		b.shot("method-history")
	})

	t.Run("query", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/query", "query")
		b.setValue(`#query-form textarea[name=query]`, "SELEC * FROM devices")
		b.click(`#query-form button[type=submit]`)
		b.formError("#query-form", "400")
		b.setValue(`#query-form textarea[name=query]`, "SELECT deviceId, connectionState FROM devices")
		b.setValue(`#query-form input[name=pageSize]`, "1")
		b.click(`#query-form button[type=submit]`)
		b.waitFor("page 1", `document.querySelector('#query-info').dataset.page === '1' && document.querySelector('#query-info').dataset.items === '1'`)
		first := b.text("#query-results")
		b.click("#query-next")
		b.waitFor("page 2", `document.querySelector('#query-info').dataset.page === '2' && document.querySelector('#query-info').dataset.items === '1'`)
		second := b.text("#query-results")
		if first == second || !strings.Contains(first+second, "thermo-1") || !strings.Contains(first+second, "thermo-2") {
			t.Errorf("pages %q and %q, want thermo-1 and thermo-2 one per page", first, second)
		}
		b.shot("query")
	})

	t.Run("statistics", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/stats", "stats")
		b.waitFor("counts", `document.querySelector('[data-stat=totalDeviceCount]').textContent === '2' && document.querySelector('[data-stat=connectedDeviceCount]').textContent === '1'`)
		b.waitFor("feedback", `document.querySelector('#feedback tbody tr')?.textContent.includes('Success')`)
		b.shot("stats")
	})

	t.Run("disable and delete", func(t *testing.T) {
		b := b.at(t)
		b.goTo("#/devices", "devices")
		row := `tr[data-device-id="` + id + `"]`
		b.waitFor("row", `document.querySelector('`+row+`') !== null`)
		b.click(row + ` td.actions button`) // Disable
		b.waitFor("disabled and dropped", `document.querySelector('`+row+`').dataset.status === 'disabled' && document.querySelector('`+row+`').dataset.state === 'Disconnected'`)
		if d, err := srv.Device(id); err != nil || !d.Disabled {
			t.Errorf("hub device %+v, %v; want disabled", d, err)
		}
		del := `tr[data-device-id="thermo-2"] td.actions button.danger`
		b.waitFor("second row", `document.querySelector('`+del+`') !== null`)
		b.click(del)
		b.click(del) // confirm
		b.waitFor("row gone", `document.querySelector('tr[data-device-id="thermo-2"]') === null`)
		if _, err := srv.Device("thermo-2"); err == nil {
			t.Error("thermo-2 still in the hub after delete")
		}
	})
}
