// SPDX-License-Identifier: MIT

package amqpapi

import (
	"context"
	"fmt"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
)

// Request nodes ($cbs, an event hub's $management) follow the AMQP
// management convention: the client attaches a sender to the node and a
// receiver from it, and sends requests whose reply-to names where the
// answer goes. The SDKs name it three ways (amqp.md §2.2): Node's IoT SDKs
// say "cbs" and attach their receiver without a target, @azure/core-amqp
// says "cbs-<uuid>" and sets its receiver's target to that, azeventhubs
// does the same with its own naming. So the reply goes on the receiver
// whose target address is reply-to, else on the newest receiver attached
// to the node. The answer's correlation-id is the request's message-id, of
// the same AMQP type (azeventhubs asserts a string); status-code is an
// AMQP int (Go asserts int32, Node compares with 200).

// Application properties of a management reply.
const (
	propStatusCode        = "status-code"
	propStatusDescription = "status-description"
)

// addReplyLink records a link on which the client receives node's replies.
func (c *conn) addReplyLink(node Node, l *amqp.Link) {
	c.mu.Lock()
	c.replies[node] = append(c.replies[node], l)
	close(c.replySig)
	c.replySig = make(chan struct{})
	c.mu.Unlock()
	go func() {
		<-l.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		ls := c.replies[node]
		for i, x := range ls {
			if x == l {
				c.replies[node] = append(ls[:i:i], ls[i+1:]...)
				break
			}
		}
	}()
}

// replyLink picks the link a reply to replyTo goes on, waiting a while for
// one to attach.
func (c *conn) replyLink(ctx context.Context, node Node, replyTo string) (*amqp.Link, error) {
	timer := time.NewTimer(c.srv.opts.replyWait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		ls := c.replies[node]
		var pick *amqp.Link
		for _, l := range ls {
			if t := l.Target(); t != nil && replyTo != "" && t.Address == replyTo {
				pick = l
			}
		}
		if pick == nil && len(ls) > 0 {
			pick = ls[len(ls)-1]
		}
		sig := c.replySig
		c.mu.Unlock()
		if pick != nil {
			return pick, nil
		}
		select {
		case <-sig:
		case <-timer.C:
			return nil, fmt.Errorf("no link attached to receive replies from %s (reply-to %q)", node, replyTo)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// serveRequests answers the requests the client sends on l, one at a time
// in order, with handle's reply, and accepts each request once its reply is
// on its way.
func (c *conn) serveRequests(l *amqp.Link, node Node, handle func(context.Context, *amqp.Message) *amqp.Message) {
	ctx, cancel := c.linkContext(l)
	defer cancel()
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		req := d.Message
		if req == nil {
			_ = d.Reject(amqp.Errorf(amqp.ErrDecode, "the request is not an AMQP message"))
			continue
		}
		resp := handle(ctx, req)
		if resp.Properties == nil {
			resp.Properties = &amqp.Properties{}
		}
		replyTo := ""
		if p := req.Properties; p != nil {
			resp.Properties.CorrelationID = p.MessageID
			replyTo = p.ReplyTo
			resp.Properties.To = p.ReplyTo
		}
		if err := c.sendReply(ctx, node, replyTo, resp); err != nil {
			c.log.Info("amqp: reply not sent", "node", node.String(), "err", err)
			_ = d.Reject(amqp.Errorf(amqp.ErrPreconditionFailed, "the reply could not be sent: %v", err))
			continue
		}
		_ = d.Accept()
	}
}

func (c *conn) sendReply(ctx context.Context, node Node, replyTo string, m *amqp.Message) error {
	ctx, cancel := context.WithTimeout(ctx, c.srv.opts.replyWait)
	defer cancel()
	l, err := c.replyLink(ctx, node, replyTo)
	if err != nil {
		return err
	}
	_, err = l.Send(ctx, m, &amqp.SendOptions{Settled: true})
	return err
}

// statusReply is a management reply: status code and description, and an
// amqp-value body when body is not nil.
func statusReply(code int32, description string, body any) *amqp.Message {
	return &amqp.Message{
		Properties:            &amqp.Properties{},
		ApplicationProperties: map[string]any{propStatusCode: code, propStatusDescription: description},
		Value:                 body,
	}
}

// stringProp reads a string application property ("" when absent or of
// another type).
func stringProp(m *amqp.Message, name string) string {
	switch v := m.ApplicationProperties[name].(type) {
	case string:
		return v
	case amqp.Symbol:
		return string(v)
	}
	return ""
}
