// SPDX-License-Identifier: MIT

package mqttapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/mochi-mqtt/server/v2/packets"
)

// What a peer may make the server hold before it has authenticated. A
// connection is not authenticated until its CONNECT has been read and
// checked, so the CONNECT is read here, before mochi sees the connection:
// mochi allocates the remaining length a packet claims before reading it,
// and would hold up to maxPacketSize for the whole wait for a CONNECT
// that never finishes.
const (
	// maxConnectSize bounds a CONNECT's remaining length. The hub's
	// CONNECT carries a client id of at most 257 bytes, a username of a
	// few hundred and a SAS token of a few hundred (§3.2); 64 KiB leaves
	// room for a will message of about 63 KB, and is RabbitMQ's default
	// CONNECT limit too. A larger CONNECT closes the connection without a
	// CONNACK: MQTT 3.1.1 has no return code for it.
	maxConnectSize = 64 * 1024
)

// Reasons a CONNECT is not handed to mochi. Each closes the connection
// without a CONNACK.
var (
	errNotConnect      = errors.New("the first packet is not a CONNECT [MQTT-3.1.0-1]")
	errConnectTooLarge = errors.New("CONNECT is larger than the server accepts before authentication")
	errMalformedLength = errors.New("malformed remaining length")
)

// readConnect reads the first packet of a connection, which must be a
// CONNECT of at most maxConnectSize bytes after its fixed header, and
// returns it whole, fixed header included. It reads incrementally: a peer
// that claims a large packet and sends little makes it hold what was sent,
// not what was claimed.
func readConnect(r io.Reader) ([]byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:1]); err != nil {
		return nil, err
	}
	// [MQTT-2.2.2-2]: CONNECT's fixed-header flags are reserved and 0.
	if head[0] != packets.Connect<<4 {
		return nil, fmt.Errorf("%w: fixed header %#02x", errNotConnect, head[0])
	}
	n, used := 0, 1
	for shift := 0; ; shift += 7 {
		if used == len(head) {
			return nil, errMalformedLength // more than four length bytes [MQTT-2.2.3]
		}
		if _, err := io.ReadFull(r, head[used:used+1]); err != nil {
			return nil, err
		}
		b := head[used]
		used++
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			break
		}
	}
	if n > maxConnectSize {
		return nil, fmt.Errorf("%w: remaining length %d, limit %d", errConnectTooLarge, n, maxConnectSize)
	}
	var buf bytes.Buffer
	buf.Write(head[:used])
	// bytes.Buffer grows by what arrives, not by n.
	if _, err := io.CopyN(&buf, r, int64(n)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf.Bytes(), nil
}

// connectRefusal is how a CONNECT that mochi has decoded is refused before
// mochi validates it: with a MQTT 3.1.1 CONNACK return code, or, when code
// is 0, by closing the connection without one.
type connectRefusal struct {
	code   byte // 3.1.1 return code 1 to 5; 0: close without CONNACK
	reason string
}

func (r *connectRefusal) Error() string { return r.reason }

// screenConnect applies MQTT 3.1.1's CONNECT rules that mochi would answer
// with MQTT 5 reason codes (0x80 and up), which a 3.1.1 client cannot read
// [MQTT-3.2.2-6]: each becomes the 3.1.1 return code the rule names, or a
// closed connection where the rule says to disconnect. It may also return
// a changed packet (see the empty password). MQTT 5 CONNECTs pass: the hook
// refuses them in OnConnect, where mochi knows their version. The result
// is nil when mochi may go on; mochi's own validation then accepts the
// packet (FuzzConnect checks that).
func screenConnect(pk *packets.Packet) *connectRefusal {
	c := &pk.Connect
	switch string(c.ProtocolName) {
	case "MQTT":
		if pk.ProtocolVersion == 5 {
			return nil
		}
		if pk.ProtocolVersion != 4 {
			// [MQTT-3.1.2-2]
			return &connectRefusal{1, fmt.Sprintf("protocol level %d is not supported", pk.ProtocolVersion)}
		}
	case "MQIsdp":
		// MQTT 3.1, whose code 1 means the same: unacceptable protocol version.
		return &connectRefusal{1, "MQTT 3.1 is not supported"}
	default:
		// [MQTT-3.1.2-1]: not MQTT at all; the server may disconnect.
		return &connectRefusal{0, fmt.Sprintf("protocol name %q is not MQTT", truncateForLog(c.ProtocolName))}
	}
	switch {
	case pk.ReservedBit != 0:
		return &connectRefusal{0, "the CONNECT flags' reserved bit is set [MQTT-3.1.2-3]"}
	case !c.WillFlag && (c.WillQos != 0 || c.WillRetain):
		return &connectRefusal{0, "will QoS or will retain set without the will flag [MQTT-3.1.2-13] [MQTT-3.1.2-15]"}
	case c.WillFlag && c.WillQos > 2:
		return &connectRefusal{0, "will QoS 3 [MQTT-3.1.2-14]"}
	case c.WillFlag && c.WillTopic == "":
		return &connectRefusal{0, "empty will topic [MQTT-4.7.3-1]"}
	case c.WillFlag && len(c.WillPayload) == 0:
		// 3.1.1 allows an empty will message; mochi does not, and the hub
		// would forward it as an empty telemetry message. Undocumented for
		// the hub: closed rather than answered with a code meaning otherwise.
		return &connectRefusal{0, "empty will message"}
	case c.PasswordFlag && !c.UsernameFlag:
		return &connectRefusal{0, "password without a username [MQTT-3.1.2-22]"}
	}
	if c.PasswordFlag && len(c.Password) == 0 {
		// 3.1.1 allows a zero-length password; it is no credential, as if
		// absent: an X.509 device still authenticates by its certificate,
		// a SAS device gets the hub's code 5. mochi would answer 0x85.
		c.PasswordFlag = false
	}
	return nil
}

// truncateForLog shortens peer-supplied bytes quoted in a log line.
func truncateForLog(b []byte) []byte {
	const max = 32
	if len(b) > max {
		return b[:max]
	}
	return b
}
