// SPDX-License-Identifier: MIT

// Package ui serves the emulator's dashboard under /ui/: static assets
// embedded in the binary (plain HTML, CSS and JavaScript modules, no build
// step) and one small configuration document.
//
// The dashboard holds no privilege of its own. The page signs SAS tokens in
// the browser with a service connection string of an owner-equivalent
// policy and calls the emulator's REST and /emulator routes like any other
// client, so every change goes through the same hub operations and the same
// authorization as the REST API. To spare a local developer the paste, the
// configuration document carries the iothubowner connection string, but
// only to a client on a loopback address that names this machine; any
// other client is asked for it.
package ui

import (
	"embed"
	"encoding/json"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/internal/sas"
)

//go:embed assets
var embedded embed.FS

// Prefix is where the dashboard is mounted.
const Prefix = "/ui/"

// Options configure the dashboard.
type Options struct {
	Hub         *hub.Hub
	ServiceHost string // HostName of service connection strings: host, with the HTTPS port when not 443
	DeviceHost  string // HostName of device connection strings: host, with the MQTT port when not 8883
}

// Config is the document served at /ui/config.json.
type Config struct {
	HostName    string `json:"hostName"`    // the hub host name SAS resources name
	ServiceHost string `json:"serviceHost"` // see Options
	DeviceHost  string `json:"deviceHost"`  // see Options
	Local       bool   `json:"local"`       // the request came from this machine (loopback)
	// ConnectionString is the iothubowner service connection string, set
	// only for local requests.
	ConnectionString string `json:"connectionString,omitempty"`
}

type handler struct {
	opts   Options
	assets fs.FS
}

// New returns the dashboard's handler, to be mounted at /ui and /ui/.
func New(opts Options) http.Handler {
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return &handler{opts: opts, assets: sub}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		// "/ui" without the slash: relative links in the page need it.
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	securityHeaders(w.Header())
	switch name {
	case "config.json":
		h.config(w, r)
		return
	case "":
		name = "index.html"
	}
	h.asset(w, r, name)
}

// securityHeaders keep the page to its own origin: scripts, styles and
// requests from 'self' only, never framed, no referrer leaving the page.
func securityHeaders(hd http.Header) {
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
}

func (h *handler) asset(w http.ResponseWriter, r *http.Request, name string) {
	if !fs.ValidPath(name) || path.Clean(name) != name {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(h.assets, name)
	if err != nil {
		// Directories fail here too: there is no listing.
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	// The assets change with the binary; revalidate rather than cache stale
	// copies across emulator upgrades.
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	c := Config{
		HostName:    h.opts.Hub.HostName(),
		ServiceHost: h.opts.ServiceHost,
		DeviceHost:  h.opts.DeviceHost,
		Local:       h.local(r),
	}
	if c.ServiceHost == "" {
		c.ServiceHost = c.HostName
	}
	if c.DeviceHost == "" {
		c.DeviceHost = c.HostName
	}
	if c.Local {
		if p, ok := h.opts.Hub.Policy(hub.OwnerPolicy); ok && p.Rights == hub.AllRights {
			c.ConnectionString = sas.ConnectionString{HostName: c.ServiceHost,
				SharedAccessKeyName: p.Name, SharedAccessKey: p.PrimaryKey}.String()
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "*")
	_ = json.NewEncoder(w).Encode(c)
}

// local reports whether r comes from this machine, directly, to a page of
// this hub:
//   - the peer address is loopback (127.0.0.0/8, ::1, or either mapped);
//   - no proxy header says it relays someone else (a reverse proxy on the
//     same machine would otherwise make every client look local);
//   - the Host header names localhost, a loopback address or the hub, so a
//     site whose DNS name was rebound to 127.0.0.1 does not qualify (TLS
//     already stops that, since the certificate does not name the site);
//   - a browser that says where the request comes from says same-origin.
func (h *handler) local(r *http.Request) bool {
	for _, hd := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip"} {
		if r.Header.Get(hd) != "" {
			return false
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if !loopback(r.RemoteAddr) {
		return false
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.EqualFold(host, h.opts.Hub.HostName()) {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func loopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}
