// SPDX-License-Identifier: MIT

package hub

// Lock order
//
// The hub has these locks. Take them only in the order listed; a lock lower
// in the list is never held while one higher up is taken.
//
//  0. adm.writeMu (configurations.go): one configuration write at a time.
//     Held across the write and the re-evaluation of every device that
//     follows it, which takes each device's twinLock in turn.
//  1. twinLock[stripe(deviceID)] (lockIdentity): one per device, shared by
//     its modules. Held across a whole store.Update, fsync included (or a
//     modifyRecord: the read, decode, merge and encode in the caller and
//     the commit that checks the bytes are unchanged), so that writes of
//     one identity commit in order and their notifications (desired
//     pushes) are queued in commit order. Never two at once: every operation
//     touches one device. Held while ending that device's connections
//     (disable, delete), which takes h.mu, c2d.mu and Conn.timerMu below.
//  2. queueLock[stripe(deviceID)] (lockQueue): one per device's C2D queue.
//     Held across the store.Update of a delivery pass (deliverC2D) or an
//     HTTPS receive (ReceiveC2D) and the in-flight tracking that follows the
//     commit, so a receive never sees a message whose delivery is committed
//     but not yet tracked. Taken on a connection's send goroutine or a
//     request's goroutine, never under twinLock.
//  3. h.mu: the connection table, runtime state, pending method calls,
//     the subscription wake-up channel and the memory release after mass
//     disconnects (whose timer it arms: the clock's mutex is internal).
//     Never held across I/O, a store call or a session call.
//  4. Leaves, each guarding its own field and never held while taking
//     another lock: c2d.mu (in-flight lock tokens), Conn.timerMu (token
//     expiry timer; it calls into the clock, whose own mutex is internal and
//     released before timer callbacks run), reactorMu, msgMu, queries.mu,
//     rec.mu, adm.mu (the compiled configurations), Conn.outMu (the queue of
//     a connection's sends; released before a send runs).
//
// What runs outside every lock: writes to a device (Session calls) run on
// that connection's send goroutine (Conn.post), so a device that stops
// reading stalls only itself; post never blocks, which is what makes it
// safe to call under twinLock. The store's commit goroutine runs callers'
// transaction functions; those take no hub lock.
