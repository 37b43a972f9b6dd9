// SPDX-License-Identifier: MIT

package mqttapi

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// TestConcurrentTakeovers fires CONNECTs for one identity all at once, over
// both transports and with either CleanSession, while an older connection
// holds the identity, so that they all take it over together. As on the
// hub, one connection per identity survives (§3.3), and it is the one the
// hub calls: a method reaches it. The survivor holds the identity for the
// next round.
func TestConcurrentTakeovers(t *testing.T) {
	const rounds, contenders = 20, 6
	e := newEnv(t)
	key := e.addDevice(t, "dev1")
	id := hub.Identity{DeviceID: "dev1"}
	pw := token(t, id, "", key, farFuture())
	holder := e.mustConnect(t, dialer{clientID: "dev1", password: pw})
	for round := range rounds {
		devs := make([]*device, contenders)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range contenders {
			wg.Go(func() {
				<-start
				d := dialer{clientID: "dev1", password: pw, ws: i%2 == 1, clean: i%3 == 0}
				if i%4 < 2 {
					// The hub stores a new model id as it registers the
					// connection: a slower registration, as a PnP device's is.
					d.username = username("dev1") + "&model-id=dtmi:com:example:Thermostat;" + strconv.Itoa(1+round%2)
				}
				dev, code, err := e.dial(d)
				switch {
				case errors.Is(err, errConnectTimeout):
					t.Errorf("round %d, contender %d: %v", round, i, err)
				case err != nil, code == pahopackets.ErrNetworkError:
					// Closed before its CONNACK by a newer connection: it lost.
				case code != codeAccepted:
					t.Errorf("round %d, contender %d: CONNACK %d, want %d", round, i, code, codeAccepted)
				}
				devs[i] = dev
			})
		}
		close(start)
		wg.Wait()
		for _, d := range devs {
			if d != nil {
				t.Cleanup(func() { d.Disconnect(0) })
			}
		}
		if t.Failed() {
			t.FailNow()
		}

		// Every loser has been closed by the server by now, but its client
		// may not have noticed yet.
		open := func() []int {
			var idx []int
			for i, d := range devs {
				if d != nil && d.IsConnectionOpen() {
					idx = append(idx, i)
				}
			}
			return idx
		}
		eventually(t, "all but one connection closed", func() bool { return len(open()) <= 1 })
		holder.waitLost(t)
		alive := open()
		if len(alive) != 1 {
			t.Fatalf("round %d: %d of %d connections survived, want 1 (hub connected: %v)", round, len(alive), contenders, e.hub.IsConnected(id))
		}
		holder = devs[alive[0]]
		if !e.hub.IsConnected(id) {
			t.Fatalf("round %d: the hub has no connection for %s, want contender %d's", round, id, alive[0])
		}
		if tok := holder.Subscribe(filterMethods, 0, nil); !tok.WaitTimeout(waitTime) || tok.Error() != nil {
			t.Fatalf("round %d: contender %d, the last connection open, failed to subscribe (%v): no connection survived (hub connected: %v)", round, alive[0], tok.Error(), e.hub.IsConnected(id))
		}
		done := invoke(e, id, hub.MethodRequest{Name: "whoami", ResponseTimeout: 5 * time.Second})
		select {
		case m := <-holder.messages:
			holder.publish(t, "$iothub/methods/res/200/?$rid="+ridOf(t, m.Topic()), 0, strconv.Itoa(alive[0]))
		case o := <-done:
			t.Fatalf("round %d: InvokeMethod returned %v (code %d) before contender %d, the survivor, had the request", round, o.err, hubCode(o.err), alive[0])
		case <-time.After(waitTime):
			t.Fatalf("round %d: no method request reached contender %d, the survivor", round, alive[0])
		}
		o := <-done
		if o.err != nil {
			t.Fatalf("round %d: InvokeMethod: %v", round, o.err)
		}
		if got, want := string(o.res.Payload), fmt.Sprint(alive[0]); got != want {
			t.Fatalf("round %d: method answered by %s, want %s", round, got, want)
		}
	}
}
