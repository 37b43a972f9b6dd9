// SPDX-License-Identifier: MIT

package amqp

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// SASL mechanism names.
const (
	SASLAnonymous Symbol = "ANONYMOUS"
	SASLPlain     Symbol = "PLAIN"
	SASLExternal  Symbol = "EXTERNAL"
	SASLMSSBCBS   Symbol = "MSSBCBS" // the Azure IoT C SDK's: anonymous, then CBS
)

// Config configures the connections the engine serves. The zero value
// works: no SASL is required (a bare AMQP header is accepted and a SASL
// header gets ANONYMOUS), every attach is refused with amqp:not-found.
type Config struct {
	ContainerID string         // our open's container-id; default "amqp-engine"
	Properties  map[Symbol]any // our open's properties

	// SASL mechanisms offered, in order (part 5, section 5.3). Empty offers
	// ANONYMOUS. RequireSASL refuses the bare "AMQP 0 1 0 0" header.
	SASLMechanisms []Symbol
	RequireSASL    bool
	// Authenticate decides a SASL exchange; nil accepts every offered
	// mechanism. It returns the identity to attach to the connection
	// (Conn.Identity) or an error, which fails the exchange with sasl-outcome
	// auth (code 1) and closes the connection.
	Authenticate func(ctx context.Context, req *SASLRequest) (identity any, err error)

	// OnOpen sees the peer's open before we answer it; an error refuses the
	// connection (we send open, then close with the error: part 2, 2.4.1).
	OnOpen func(c *Conn) error
	// OnAttach decides each attach by the peer. Return nil to accept (after
	// filling reply as needed) or an error to refuse: the engine answers the
	// attach with a null terminus (or reply's) and detaches with the error
	// (an *Error as is, any other error as amqp:internal-error). It runs on
	// the connection's reader: return promptly and never wait for this
	// connection's traffic. Nil refuses every attach with amqp:not-found.
	OnAttach func(l *Link, reply *AttachReply) error

	MaxFrameSize       uint32        // we accept; default 65536, at least 512
	MaxSessions        int           // concurrent sessions (channel-max+1); default 5000 (the service's channel-max is 4999)
	MaxLinksPerSession int           // handle-max+1; default 1024
	MaxLinks           int           // concurrent links per connection; default 4096
	MaxMessageSize     uint64        // largest incoming message; default 1 MiB (the adapter may lower it per link)
	SessionWindow      uint32        // incoming-window in transfer frames; default 2048
	Credit             uint32        // default credit window for links where the peer sends; default 100
	IdleTimeout        time.Duration // advertised and enforced; default 2 min (what Service Bus and Event Hubs advertise), negative disables
	OpenTimeout        time.Duration // from accept to the peer's open (SASL included); default 30 s
	WriteTimeout       time.Duration // a blocked write drops the connection after this; default 30 s
	CloseTimeout       time.Duration // how long to wait for the peer's close; default 5 s
	MaxWriteQueue      int           // bytes queued for a peer that does not read before Send waits; default 1 MiB
	MaxBufferedBytes   int           // incoming message bytes held per connection before credit stops; default 64 MiB
	Limits             codec.Limits  // decoder limits

	Logger *slog.Logger // frame trace at debug; nil discards
}

// SASLRequest is what the peer sent in sasl-init.
type SASLRequest struct {
	Conn      *Conn
	Mechanism Symbol
	Hostname  string // sasl-init hostname
	Response  []byte // the initial response, raw
	// PLAIN (RFC 4616) splits the response into these three; the password
	// is a SAS token for the Azure SDKs.
	AuthzID, AuthcID, Password string
	TLS                        *tls.ConnectionState // nil without TLS
}

// AttachReply is what OnAttach may set on our answering attach.
type AttachReply struct {
	Properties          map[Symbol]any
	OfferedCapabilities []Symbol
	DesiredCapabilities []Symbol
	// MaxMessageSize we accept on a link where the peer sends (0 keeps
	// Config.MaxMessageSize).
	MaxMessageSize uint64
	// Credit is the credit window for a link where the peer sends: the
	// engine keeps credit plus unsettled deliveries at this level (0 keeps
	// Config.Credit).
	Credit uint32
	// ManualDrain: the engine does not answer a drain itself when no Send
	// is waiting; the application calls Link.CompleteDrain.
	ManualDrain bool
	// Source and Target replace the terminus we echo (e.g. the address of
	// a dynamic node). On a refusal, the one we own (the source when the peer
	// receives, the target when it sends) is null unless set here: the hub
	// echoes it for its amqp:link:redirect.
	Source *Source
	Target *Target
	// RcvSettleMode overrides the receiver settle mode we answer with on a
	// link where the peer sends (nil: the mode the peer asked for).
	RcvSettleMode *ReceiverSettleMode
	// SndSettleMode overrides the sender settle mode we answer with on a
	// link where the peer receives (nil: the mode the peer asked for).
	SndSettleMode *SenderSettleMode
}

func (c *Config) withDefaults() *Config {
	cc := *c
	if cc.ContainerID == "" {
		cc.ContainerID = "amqp-engine"
	}
	if len(cc.SASLMechanisms) == 0 {
		cc.SASLMechanisms = []Symbol{SASLAnonymous}
	}
	if cc.MaxFrameSize == 0 {
		cc.MaxFrameSize = 65536
	}
	if cc.MaxFrameSize < minMaxFrameSize {
		cc.MaxFrameSize = minMaxFrameSize
	}
	if cc.MaxSessions <= 0 || cc.MaxSessions > 65536 {
		cc.MaxSessions = 5000
	}
	if cc.MaxLinksPerSession <= 0 {
		cc.MaxLinksPerSession = 1024
	}
	if cc.MaxLinks <= 0 {
		cc.MaxLinks = 4096
	}
	if cc.MaxMessageSize == 0 {
		cc.MaxMessageSize = 1 << 20
	}
	if cc.SessionWindow == 0 {
		cc.SessionWindow = 2048
	}
	if cc.Credit == 0 {
		cc.Credit = 100
	}
	if cc.IdleTimeout == 0 {
		cc.IdleTimeout = 2 * time.Minute
	}
	if cc.OpenTimeout <= 0 {
		cc.OpenTimeout = 30 * time.Second
	}
	if cc.WriteTimeout <= 0 {
		cc.WriteTimeout = 30 * time.Second
	}
	if cc.CloseTimeout <= 0 {
		cc.CloseTimeout = 5 * time.Second
	}
	if cc.MaxBufferedBytes <= 0 {
		cc.MaxBufferedBytes = 64 << 20
	}
	if cc.MaxWriteQueue <= 0 {
		cc.MaxWriteQueue = 1 << 20
	}
	if cc.Logger == nil {
		cc.Logger = slog.New(slog.DiscardHandler)
	}
	return &cc
}
