// SPDX-License-Identifier: MIT

package fleet

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// A minimal MQTT 3.1.1 codec: what a device of IoT Hub sends and receives,
// nothing more. paho would do, but it keeps several goroutines and queues per
// client, which is what a simulator of many thousand devices cannot afford.

// Packet types (MQTT 3.1.1 §2.2.1), shifted into the fixed header's high
// nibble.
const (
	pktConnect    = 1 << 4
	pktConnack    = 2 << 4
	pktPublish    = 3 << 4
	pktPuback     = 4 << 4
	pktSubscribe  = 8 << 4
	pktSuback     = 9 << 4
	pktPingreq    = 12 << 4
	pktPingresp   = 13 << 4
	pktDisconnect = 14 << 4
)

// maxPacket bounds what a simulated device reads: the hub's largest
// message (256 KB) plus topic and headers, with room to spare.
const maxPacket = 512 << 10

var errMalformed = errors.New("fleet: malformed MQTT packet")

// appendLength appends the variable-length "remaining length" (§2.2.3).
func appendLength(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// connectPacket encodes a CONNECT with CleanSession set as clean says.
func connectPacket(clientID, username, password string, keepAlive uint16, clean bool) []byte {
	flags := byte(0)
	if clean {
		flags |= 0x02
	}
	if username != "" {
		flags |= 0x80
	}
	if password != "" {
		flags |= 0x40
	}
	body := make([]byte, 0, 16+len(clientID)+len(username)+len(password))
	body = appendString(body, "MQTT")
	body = append(body, 4, flags)
	body = binary.BigEndian.AppendUint16(body, keepAlive)
	body = appendString(body, clientID)
	if username != "" {
		body = appendString(body, username)
	}
	if password != "" {
		body = appendString(body, password)
	}
	return append(appendLength([]byte{pktConnect}, len(body)), body...)
}

// appendPublish appends a PUBLISH; pid is used only at QoS 1.
func appendPublish(b []byte, topic string, payload []byte, qos byte, pid uint16) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	b = appendLength(append(b, pktPublish|qos<<1), n)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, pid)
	}
	return append(b, payload...)
}

func subscribePacket(pid uint16, filters ...string) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, pid)
	for _, f := range filters {
		body = appendString(body, f)
		body = append(body, 1) // QoS 1
	}
	return append(appendLength([]byte{pktSubscribe | 0x02}, len(body)), body...)
}

func pubackPacket(pid uint16) []byte {
	return []byte{pktPuback, 2, byte(pid >> 8), byte(pid)}
}

// packet is one received packet; for PUBLISH, topic and payload are
// filled in, for PUBACK and SUBACK the packet id.
type packet struct {
	typ     byte // the high nibble of the fixed header, as the pkt constants
	flags   byte // the low nibble
	pid     uint16
	topic   string
	payload []byte
	body    []byte // the whole variable part (CONNACK, SUBACK)
}

// readPacket reads one packet. buf is reused for the body when it is large
// enough; payload aliases it, so it is valid until the next read.
func readPacket(r *bufio.Reader, buf []byte) (packet, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return packet{}, buf, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return packet{}, buf, err
		}
		n += int(c&0x7f) * mult
		if c&0x80 == 0 {
			break
		}
		if i == 3 {
			return packet{}, buf, errMalformed
		}
		mult *= 128
	}
	if n > maxPacket {
		return packet{}, buf, fmt.Errorf("fleet: %d-byte packet is over the %d-byte limit", n, maxPacket)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return packet{}, buf, err
	}
	p := packet{typ: h & 0xf0, flags: h & 0x0f, body: body}
	switch p.typ {
	case pktPublish:
		if len(body) < 2 {
			return p, buf, errMalformed
		}
		tl := int(binary.BigEndian.Uint16(body))
		rest := body[2:]
		if len(rest) < tl {
			return p, buf, errMalformed
		}
		p.topic, rest = string(rest[:tl]), rest[tl:]
		if (p.flags>>1)&3 > 0 {
			if len(rest) < 2 {
				return p, buf, errMalformed
			}
			p.pid, rest = binary.BigEndian.Uint16(rest), rest[2:]
		}
		p.payload = rest
	case pktPuback, pktSuback:
		if len(body) < 2 {
			return p, buf, errMalformed
		}
		p.pid = binary.BigEndian.Uint16(body)
	}
	return p, buf, nil
}
