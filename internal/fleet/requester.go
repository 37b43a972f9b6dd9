// SPDX-License-Identifier: MIT

package fleet

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Requester measures request and reply through a plain MQTT broker, the
// baseline of a direct method: it publishes a request on a device's
// devicebound topic and waits for the device (a fleet with Echo set) to
// publish it back on its events topic. It needs a broker that lets any
// client publish and subscribe to anything (bare mochi with its allow-all
// hook), never IoT Hub.
type Requester struct {
	name string // topic level that routes replies to this requester alone
	conn net.Conn
	wmu  sync.Mutex

	mu      sync.Mutex
	nextRID uint64
	waiting map[string]chan struct{}
	err     error
}

var requesterSeq atomic.Uint64

// DialRequester connects to a plain broker at addr.
func DialRequester(ctx context.Context, addr string, cfg *tls.Config) (*Requester, error) {
	var d tls.Dialer
	d.Config = cfg
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(c, 4096)
	name := "q" + strconv.FormatUint(requesterSeq.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := c.Write(connectPacket("requester-"+name, "", "", 0, true)); err != nil {
		c.Close()
		return nil, err
	}
	if p, _, err := readPacket(r, nil); err != nil || p.typ != pktConnack || len(p.body) < 2 || p.body[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("fleet: requester not accepted: %v", err)
	}
	if _, err := c.Write(subscribePacket(1, "devices/+/messages/events/"+name+"/#")); err != nil {
		c.Close()
		return nil, err
	}
	if p, _, err := readPacket(r, nil); err != nil || p.typ != pktSuback {
		c.Close()
		return nil, fmt.Errorf("fleet: requester subscription: %v", err)
	}
	q := &Requester{name: name, conn: c, waiting: map[string]chan struct{}{}}
	go q.readLoop(r)
	return q, nil
}

func (q *Requester) readLoop(r *bufio.Reader) {
	var buf []byte
	for {
		p, nb, err := readPacket(r, buf)
		if err != nil {
			q.mu.Lock()
			q.err = err
			for rid, ch := range q.waiting {
				close(ch)
				delete(q.waiting, rid)
			}
			q.mu.Unlock()
			return
		}
		buf = nb
		if p.typ != pktPublish {
			continue
		}
		_, rid, _ := strings.Cut(p.topic, "/"+q.name+"/rid=")
		q.mu.Lock()
		if ch := q.waiting[rid]; ch != nil {
			close(ch)
			delete(q.waiting, rid)
		}
		q.mu.Unlock()
	}
}

// Request sends payload to deviceID and waits for its echo.
func (q *Requester) Request(ctx context.Context, deviceID string, payload []byte) error {
	ch := make(chan struct{})
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return q.err
	}
	q.nextRID++
	rid := strconv.FormatUint(q.nextRID, 10)
	q.waiting[rid] = ch
	q.mu.Unlock()
	topic := "devices/" + deviceID + "/messages/devicebound/" + q.name + "/rid=" + rid
	q.wmu.Lock()
	_, err := q.conn.Write(appendPublish(nil, topic, payload, 0, 0))
	q.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-ch:
		q.mu.Lock()
		err := q.err
		q.mu.Unlock()
		return err
	case <-ctx.Done():
		q.mu.Lock()
		delete(q.waiting, rid)
		q.mu.Unlock()
		return ctx.Err()
	}
}

// Close closes the connection.
func (q *Requester) Close() error { return q.conn.Close() }
