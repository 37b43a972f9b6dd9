// SPDX-License-Identifier: MIT

package amqpapi

import (
	"fmt"
	"sync"

	"github.com/iothubemulator/iothub/emulator/internal/amqp"
)

// Epoch receivers (Event Hubs' owner level): on one partition of one
// consumer group, a receiver with an epoch (com.microsoft:epoch) owns the
// partition. A new receiver whose epoch is at least the owner's takes over:
// every other receiver there is detached with amqp:link:stolen (the
// condition azeventhubs reports as ownership lost, @azure/event-hubs as
// ReceiverDisconnectedError). A lower epoch, or no epoch while an owner
// exists, is refused with the same condition. Without owners, at most
// five receivers share a partition (Event Hubs' quota).

type readerKey struct {
	group     string // lower case
	partition int
}

type reader struct {
	link  *amqp.Link
	epoch *int64
	name  string
}

type readers struct {
	mu sync.Mutex
	by map[readerKey][]*reader
}

func (rs *readers) init() { rs.by = map[readerKey][]*reader{} }

// join registers r, detaching the receivers it takes over from, or refuses
// it. It leaves again when its link ends.
func (rs *readers) join(k readerKey, r *reader) error {
	rs.mu.Lock()
	cur := rs.by[k]
	var owner *reader
	for _, x := range cur {
		if x.epoch != nil {
			owner = x
		}
	}
	var stolen []*reader
	switch {
	case r.epoch == nil && owner != nil:
		rs.mu.Unlock()
		return amqp.Errorf(amqp.ErrLinkStolen, "At least one receiver for the endpoint is created with epoch of '%d', and so non-epoch receiver is not allowed. Either reconnect with a higher epoch, or make sure all epoch receivers are closed or disconnected.", *owner.epoch)
	case r.epoch == nil && len(cur) >= maxNonEpochReaders:
		rs.mu.Unlock()
		return amqp.Errorf(amqp.ErrResourceLimitExceeded, "Exceeded the maximum number of allowed receivers per partition in a consumer group which is %d.", maxNonEpochReaders)
	case r.epoch != nil && owner != nil && *r.epoch < *owner.epoch:
		rs.mu.Unlock()
		return amqp.Errorf(amqp.ErrLinkStolen, "Receiver '%s' with epoch '%d' cannot be created because a receiver with epoch '%d' already exists. If you are recreating the receiver, make sure a higher epoch is used.", r.name, *r.epoch, *owner.epoch)
	case r.epoch != nil:
		stolen = cur
		cur = nil
	}
	rs.by[k] = append(cur, r)
	rs.mu.Unlock()
	for _, x := range stolen {
		was := "without an epoch"
		if x.epoch != nil {
			was = fmt.Sprintf("with epoch '%d'", *x.epoch)
		}
		x.link.Detach(amqp.Errorf(amqp.ErrLinkStolen, "New receiver '%s' with higher epoch of '%d' is created hence current receiver '%s' %s is getting disconnected. If you are recreating the receiver, make sure a higher epoch is used.", r.name, *r.epoch, x.name, was))
	}
	go func() {
		<-r.link.Done()
		rs.leave(k, r)
	}()
	return nil
}

func (rs *readers) leave(k readerKey, r *reader) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	cur := rs.by[k]
	for i, x := range cur {
		if x == r {
			cur = append(cur[:i:i], cur[i+1:]...)
			break
		}
	}
	if len(cur) == 0 {
		delete(rs.by, k)
	} else {
		rs.by[k] = cur
	}
}
