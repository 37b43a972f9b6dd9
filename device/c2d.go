// SPDX-License-Identifier: MIT

package device

import (
	"context"
	"errors"
	"fmt"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MessageHandler receives cloud-to-device messages.
type MessageHandler func(m *Message)

// OnMessage registers h for cloud-to-device messages (Python's
// on_message_received) and subscribes to
// devices/{id}/messages/devicebound/# at QoS 1. Messages are handed to h one
// at a time, in arrival order; the hub's PUBACK (which completes the message)
// is sent on receipt, since MQTT cannot reject or abandon.
//
// h first gets the messages that arrived while no handler was set and that
// no ReceiveMessage call took: the hub keeps the device's subscriptions
// between connections (CleanSession 0), so messages queued for an offline
// device can arrive right after Connect, before OnMessage is called. While
// a handler is set it gets every message and ReceiveMessage calls wait. nil
// removes the handler; later messages then queue for ReceiveMessage.
//
// Cloud-to-device messages exist for devices only: on a module client
// OnMessage does nothing but log, since the hub closes the connection of a
// module that subscribes to them.
func (c *Client) OnMessage(h MessageHandler) {
	if c.id.moduleID != "" {
		c.log.Error("OnMessage on a module client: cloud-to-device messages are for devices only")
		return
	}
	c.mu.Lock()
	c.messageHandler = h
	if h != nil && !c.closed {
		// Under c.mu, so these go before any message dispatched later.
		for _, m := range c.c2dInbox.remove(all) {
			c.c2dQ.push(c, func() { h(m) })
		}
	}
	c.mu.Unlock()
	c.require(c2dFilter(c.id.deviceID), qosC2D)
}

// ReceiveMessage returns the next cloud-to-device message that no handler
// took (Python's receive_message), subscribing on first use; while a
// handler is set (see OnMessage) it waits. It fails on a module client.
func (c *Client) ReceiveMessage(ctx context.Context) (*Message, error) {
	if c.id.moduleID != "" {
		return nil, errors.New("device: receive message: cloud-to-device messages are for devices only")
	}
	c.require(c2dFilter(c.id.deviceID), qosC2D)
	m, err := c.c2dInbox.take(ctx, c.ctx.Done())
	if err != nil {
		return nil, fmt.Errorf("device: receive message: %w", err)
	}
	return m, nil
}

func (c *Client) onC2D(in inbound, payload []byte) {
	m := &Message{Body: payload}
	decodeProperties(in.bag, m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if h := c.messageHandler; h != nil {
		c.c2dQ.push(c, func() { h(m) })
		return
	}
	c.c2dInbox.put(m)
}

// dispatch routes a publish from the hub. It runs on paho's router
// goroutine, so it only parses and queues; the application's code runs
// elsewhere.
func (c *Client) dispatch(m mqtt.Message) {
	in := classify(m.Topic(), c.id.deviceID)
	switch in.kind {
	case inboundTwinResponse:
		c.onTwinResponse(in, m.Payload())
	case inboundDesired:
		c.onDesired(in, m.Payload())
	case inboundMethod:
		c.onMethodRequest(in, m.Payload())
	case inboundC2D:
		c.onC2D(in, m.Payload())
	default:
		c.log.Debug("ignoring publish on unknown topic", "topic", m.Topic())
	}
}
