// SPDX-License-Identifier: MIT

package amqp

import (
	"fmt"
	"strings"
)

// perfName names a performative for logs and errors.
func perfName(p any) string {
	switch p.(type) {
	case *performOpen:
		return "open"
	case *performBegin:
		return "begin"
	case *performAttach:
		return "attach"
	case *performFlow:
		return "flow"
	case *performTransfer:
		return "transfer"
	case *performDisposition:
		return "disposition"
	case *performDetach:
		return "detach"
	case *performEnd:
		return "end"
	case *performClose:
		return "close"
	case *saslMechanisms:
		return "sasl-mechanisms"
	case *saslInit:
		return "sasl-init"
	case *saslChallenge:
		return "sasl-challenge"
	case *saslResponse:
		return "sasl-response"
	case *saslOutcome:
		return "sasl-outcome"
	}
	return fmt.Sprintf("%T", p)
}

func u32(p *uint32) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// describe renders a performative's main fields, like PN_TRACE_FRM.
func describe(p any) string {
	var b strings.Builder
	switch p := p.(type) {
	case *performOpen:
		fmt.Fprintf(&b, "container-id=%q hostname=%q max-frame-size=%d channel-max=%d idle-time-out=%v properties=%v",
			p.ContainerID, p.Hostname, p.MaxFrameSize, p.ChannelMax, p.IdleTimeout, p.Properties)
	case *performBegin:
		rc := "-"
		if p.RemoteChannel != nil {
			rc = fmt.Sprint(*p.RemoteChannel)
		}
		fmt.Fprintf(&b, "remote-channel=%s next-outgoing-id=%d incoming-window=%d outgoing-window=%d handle-max=%d",
			rc, p.NextOutgoingID, p.IncomingWindow, p.OutgoingWindow, p.HandleMax)
	case *performAttach:
		fmt.Fprintf(&b, "name=%q handle=%d role=%s snd-settle-mode=%d rcv-settle-mode=%d", p.Name, p.Handle, p.Role, p.SndSettleMode, p.RcvSettleMode)
		if p.Source != nil {
			fmt.Fprintf(&b, " source=%q", p.Source.Address)
			if len(p.Source.Filter) > 0 {
				fmt.Fprintf(&b, " filter=%v", p.Source.Filter)
			}
		} else {
			b.WriteString(" source=null")
		}
		if p.Target != nil {
			fmt.Fprintf(&b, " target=%q", p.Target.Address)
		} else if p.Coordinator {
			b.WriteString(" target=coordinator")
		} else {
			b.WriteString(" target=null")
		}
		fmt.Fprintf(&b, " initial-delivery-count=%s max-message-size=%d", u32(p.InitialDeliveryCount), p.MaxMessageSize)
		if len(p.Properties) > 0 {
			fmt.Fprintf(&b, " properties=%v", p.Properties)
		}
		if len(p.DesiredCapabilities) > 0 {
			fmt.Fprintf(&b, " desired-capabilities=%v", p.DesiredCapabilities)
		}
	case *performFlow:
		fmt.Fprintf(&b, "next-incoming-id=%s incoming-window=%d next-outgoing-id=%d outgoing-window=%d handle=%s delivery-count=%s link-credit=%s drain=%v echo=%v",
			u32(p.NextIncomingID), p.IncomingWindow, p.NextOutgoingID, p.OutgoingWindow, u32(p.Handle), u32(p.DeliveryCount), u32(p.LinkCredit), p.Drain, p.Echo)
	case *performTransfer:
		settled := "-"
		if p.Settled != nil {
			settled = fmt.Sprint(*p.Settled)
		}
		fmt.Fprintf(&b, "handle=%d delivery-id=%s tag=%x format=%s settled=%s more=%v", p.Handle, u32(p.DeliveryID), p.DeliveryTag, u32(p.MessageFormat), settled, p.More)
		if p.Aborted {
			b.WriteString(" aborted=true")
		}
		if p.State != nil {
			fmt.Fprintf(&b, " state=%s", stateName(p.State))
		}
		fmt.Fprintf(&b, " payload=%dB", len(p.Payload))
	case *performDisposition:
		fmt.Fprintf(&b, "role=%s first=%d last=%s settled=%v state=%s", p.Role, p.First, u32(p.Last), p.Settled, stateName(p.State))
	case *performDetach:
		fmt.Fprintf(&b, "handle=%d closed=%v error=%v", p.Handle, p.Closed, errStr(p.Error))
	case *performEnd:
		fmt.Fprintf(&b, "error=%v", errStr(p.Error))
	case *performClose:
		fmt.Fprintf(&b, "error=%v", errStr(p.Error))
	case *saslMechanisms:
		fmt.Fprintf(&b, "mechanisms=%v", p.Mechanisms)
	case *saslOutcome:
		fmt.Fprintf(&b, "code=%d", p.Code)
	case *saslInit:
		fmt.Fprintf(&b, "mechanism=%s hostname=%q", p.Mechanism, p.Hostname)
	}
	return b.String()
}

func errStr(e *Error) string {
	if e == nil {
		return "none"
	}
	if len(e.Info) > 0 {
		return fmt.Sprintf("%s info=%v", e.Error(), e.Info)
	}
	return e.Error()
}

func (c *Conn) traceFrame(dir string, ch uint16, p any) {
	c.log.Debug("amqp frame", "dir", dir, "ch", ch, "perf", perfName(p), "fields", describe(p))
}

func (c *Conn) tracef(dir string, ch uint16, format string, args ...any) {
	if c.trace {
		c.log.Debug("amqp frame", "dir", dir, "ch", ch, "perf", fmt.Sprintf(format, args...))
	}
}
