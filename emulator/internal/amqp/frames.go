// SPDX-License-Identifier: MIT

package amqp

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/iothubemulator/iothub/emulator/internal/amqp/codec"
)

// Protocol ids of the 8-byte protocol header "AMQP" id 1 0 0 (part 2,
// section 2.2; part 5, sections 5.1 and 5.2).
const (
	protoAMQP = 0
	protoTLS  = 2
	protoSASL = 3
)

func protoHeader(id byte) []byte { return []byte{'A', 'M', 'Q', 'P', id, 1, 0, 0} }

// readProtoHeader reads a protocol header. A header of another version or
// anything that is not a header returns ok=false with the id seen.
func readProtoHeader(r io.Reader) (id byte, ok bool, err error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, false, err
	}
	if string(h[:4]) != "AMQP" || h[5] != 1 || h[6] != 0 || h[7] != 0 {
		return h[4], false, nil
	}
	return h[4], true, nil
}

// Frame types (part 2, section 2.3.1 and part 5, section 5.3.1).
const (
	frameAMQP = 0
	frameSASL = 1
)

// minMaxFrameSize is the smallest max-frame-size a peer may advertise
// (part 2, section 2.7.1: MIN-MAX-FRAME-SIZE).
const minMaxFrameSize = 512

// frame is one frame read from the wire. An empty body is a heartbeat.
type frame struct {
	typ     byte
	channel uint16
	body    []byte
}

// frameError is a framing violation: the connection closes with
// amqp:connection:framing-error (part 2, section 2.8.16).
func frameError(format string, args ...any) *Error {
	return &Error{Condition: ErrFramingError, Description: fmt.Sprintf(format, args...)}
}

// readFrame reads one frame no larger than maxSize (part 2, section 2.3.1).
// The body is a fresh slice the caller may keep.
func readFrame(r *bufio.Reader, maxSize uint32) (frame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	size := binary.BigEndian.Uint32(h[0:4])
	doff := h[4]
	if size < 8 {
		return frame{}, frameError("frame size %d is below the 8-byte header", size)
	}
	if size > maxSize {
		return frame{}, frameError("frame size %d exceeds the negotiated max-frame-size %d", size, maxSize)
	}
	if doff < 2 || uint32(doff)*4 > size {
		return frame{}, frameError("data offset %d is invalid for a frame of %d bytes", doff, size)
	}
	rest := make([]byte, size-8)
	if _, err := io.ReadFull(r, rest); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	return frame{typ: h[5], channel: binary.BigEndian.Uint16(h[6:8]), body: rest[int(doff)*4-8:]}, nil
}

// appendFrame appends a frame whose body is the performative p followed by
// payload (for a transfer).
func appendFrame(b []byte, typ byte, channel uint16, p codec.Marshaler, payload []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	var err error
	if p != nil {
		if b, err = p.AppendAMQP(b); err != nil {
			return b[:start], err
		}
	}
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b, nil
}

// heartbeat is an empty frame (part 2, section 2.4.5).
var heartbeat = []byte{0, 0, 0, 8, 2, 0, 0, 0}
