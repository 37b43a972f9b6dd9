// SPDX-License-Identifier: MIT

package emulator

import (
	"log/slog"
	"net"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqpapi"
	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/mqttapi"
)

// WellKnownOwnerKey is the default primary key of the iothubowner policy.
// It is published on purpose, like Azurite's account key, so that a fresh
// emulator always has the same service connection string. Never use it for
// anything but local testing.
const WellKnownOwnerKey = "SW9USHViRW11bGF0b3JXZWxsS25vd25Pd25lcktleSE="

// Defaults: the one place they are written. The command's flags show
// them, and setDefaults applies them.
const (
	DefaultHostName             = "localhost"
	DefaultMQTTAddr             = mqttapi.DefaultAddr // the hub's MQTT over TLS port
	DefaultHTTPSAddr            = ":443"
	DefaultDataDir              = "./iothub-data"
	DefaultTelemetryMaxMessages = hub.DefaultRetentionMessages
	DefaultTelemetryMaxAge      = hub.DefaultRetentionAge
	DefaultTelemetryMaxBytes    = hub.DefaultRetentionBytes
	DefaultPartitions           = hub.DefaultPartitions
	DefaultMaxConcurrentJobs    = hub.DefaultMaxActiveJobs
	DefaultAMQPAddr             = amqpapi.DefaultAddr      // the hub's AMQP over TLS port
	DefaultAMQPPlainAddr        = amqpapi.DefaultPlainAddr // plain AMQP for UseDevelopmentEmulator=true clients: loopback, nothing on it is encrypted
	DefaultLockTimeout          = time.Second
	// DefaultIDScope is the Device Provisioning Service's ID scope. It is
	// fixed and published, so that a device's provisioning settings work
	// against any fresh emulator.
	DefaultIDScope = "0ne00000E11"
)

// WellKnownProvisioningKey is the default primary key of the provisioning
// service's provisioningserviceowner policy, published like
// WellKnownOwnerKey. Never use it for anything but local testing.
const WellKnownProvisioningKey = "SW9USHViRW11bGF0b3JQcm92aXNpb25pbmdLZXkhIQ=="

// Options configure a Server. The zero value works: defaults are applied in
// one place, setDefaults.
type Options struct {
	HostName    string           `json:"hostName"`    // hub host name in connection strings, SAS resources and the certificate; default "localhost"
	TLSSANs     []string         `json:"tlsSans"`     // extra certificate names (DNS or IP), also accepted as SAS hosts
	MQTTAddr    string           `json:"mqttAddr"`    // MQTT over TLS listen address; default ":8883"
	HTTPSAddr   string           `json:"httpsAddr"`   // HTTPS (REST + MQTT over WebSockets) listen address; default ":443"
	DataDir     string           `json:"dataDir"`     // database and generated certificates; default "./iothub-data"
	InMemory    bool             `json:"inMemory"`    // keep nothing after Close
	TLSCertFile string           `json:"tlsCertFile"` // server certificate (PEM); generated when empty
	TLSKeyFile  string           `json:"tlsKeyFile"`  // server key (PEM)
	OwnerKey    string           `json:"ownerKey"`    // iothubowner primary key (base64); default WellKnownOwnerKey
	Config      *Config          `json:"-"`           // policies and devices applied at start
	Logger      *slog.Logger     `json:"-"`           // default: discard
	Clock       func() time.Time `json:"-"`           // the clock's base; default wall time (see Server.SetClock)
	LockTimeout time.Duration    `json:"-"`           // how long to wait for a database another process holds; default 1s

	TelemetryMaxMessages int           `json:"telemetryMaxMessages"` // recorded telemetry kept; default 100,000
	TelemetryMaxAge      time.Duration `json:"telemetryMaxAge"`      // recorded telemetry older than this is dropped; default 24h
	TelemetryMaxBytes    int64         `json:"telemetryMaxBytes"`    // stored bytes of recorded telemetry kept; default 256 MiB
	Partitions           int           `json:"partitions"`           // partitions of the Event Hub-compatible endpoint (1 to 32); default 4

	// MaxConcurrentJobs is how many jobs (/jobs/v2) may be queued,
	// scheduled or running at once; more are refused with 429
	// ThrottlingMaxActiveJobCountExceeded. Default 1, the Free and S1
	// tiers' limit (S2 allows 5, S3 10).
	MaxConcurrentJobs int `json:"maxConcurrentJobs"`

	// File upload, the hub's fileUpload setting: the Azure Storage account
	// (Azurite's, locally) whose container devices upload to. Without it
	// the file-upload routes answer as a hub without file upload does.
	StorageConnectionString        string        `json:"storageConnectionString"`        // e.g. Azurite's; empty: file upload not configured
	StorageCAFile                  string        `json:"storageCaFile"`                  // PEM CAs trusted for storage over HTTPS, beside the system roots and the emulator's own CA
	FileUploadContainer            string        `json:"fileUploadContainer"`            // default "fileupload"; created when missing
	FileUploadSASTTL               time.Duration `json:"fileUploadSasTtl"`               // lifetime of an upload's SAS; default 1h, at most 24h
	DisableFileUploadNotifications bool          `json:"disableFileUploadNotifications"` // the hub's notifications are on by default

	IDScope     string `json:"idScope"`     // the Device Provisioning Service's ID scope; default DefaultIDScope
	DPSOwnerKey string `json:"dpsOwnerKey"` // provisioningserviceowner primary key (base64); default WellKnownProvisioningKey

	// AMQP listen addresses: over TLS (default ":5671") and plain, for
	// Event Hubs clients with UseDevelopmentEmulator=true (default
	// "127.0.0.1:5672"); "off" turns one off. Left empty while HTTPSAddr
	// asks for a free port (":0"), each gets a free port too.
	AMQPAddr      string `json:"amqpAddr"`
	AMQPPlainAddr string `json:"amqpPlainAddr"`
}

// DefaultFileUploadContainer is the upload container when none is given.
const DefaultFileUploadContainer = "fileupload"

// ListenOff, as a listen address, turns that listener off.
const ListenOff = "off"

func (o *Options) setDefaults() {
	if o.HostName == "" {
		o.HostName = DefaultHostName
	}
	if o.MQTTAddr == "" {
		o.MQTTAddr = DefaultMQTTAddr
	}
	if o.HTTPSAddr == "" {
		o.HTTPSAddr = DefaultHTTPSAddr
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.OwnerKey == "" {
		o.OwnerKey = WellKnownOwnerKey
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.TelemetryMaxMessages == 0 {
		o.TelemetryMaxMessages = DefaultTelemetryMaxMessages
	}
	if o.TelemetryMaxAge == 0 {
		o.TelemetryMaxAge = DefaultTelemetryMaxAge
	}
	if o.TelemetryMaxBytes == 0 {
		o.TelemetryMaxBytes = DefaultTelemetryMaxBytes
	}
	if o.Partitions == 0 {
		o.Partitions = DefaultPartitions
	}
	if o.MaxConcurrentJobs == 0 {
		o.MaxConcurrentJobs = DefaultMaxConcurrentJobs
	}
	if o.FileUploadContainer == "" {
		o.FileUploadContainer = DefaultFileUploadContainer
	}
	if o.FileUploadSASTTL == 0 {
		o.FileUploadSASTTL = time.Hour
	}
	if o.IDScope == "" {
		o.IDScope = DefaultIDScope
	}
	if o.DPSOwnerKey == "" {
		o.DPSOwnerKey = WellKnownProvisioningKey
	}
	// A caller that lets the system pick the HTTPS port wants an isolated
	// emulator (a test): the AMQP listeners it leaves unset get free ports
	// too, instead of the fixed 5671 and 5672 that two such emulators
	// would fight over.
	host, port, _ := net.SplitHostPort(o.HTTPSAddr)
	if o.AMQPAddr == "" {
		o.AMQPAddr = DefaultAMQPAddr
		if port == "0" {
			o.AMQPAddr = net.JoinHostPort(host, "0")
		}
	}
	if o.AMQPPlainAddr == "" {
		o.AMQPPlainAddr = DefaultAMQPPlainAddr
		if port == "0" && host != "" {
			o.AMQPPlainAddr = net.JoinHostPort(host, "0")
		} else if port == "0" {
			o.AMQPPlainAddr = "127.0.0.1:0"
		}
	}
}
