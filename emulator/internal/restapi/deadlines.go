// SPDX-License-Identifier: MIT

package restapi

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// Per-request deadlines. One server-wide write timeout cannot fit every
// route: most answer at once, but a direct method may wait up to 600 s
// (a 300 s connect timeout plus a 300 s response timeout) and
// /emulator/messages up to 60 s. So every request gets the default, and a
// route that waits extends its own by what it was asked to wait.
const (
	// DefaultWriteTimeout bounds an ordinary request, from its headers to
	// the end of its answer.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultBodyTimeout bounds the arrival of a request body (at most
	// maxBody bytes); a client that trickles it is cut off.
	DefaultBodyTimeout = 60 * time.Second
	// writeSlack is what a waiting route adds to its wait for the rest of
	// the request: the work around the wait and writing the answer.
	writeSlack = 30 * time.Second
)

// setDeadlines gives the request its write deadline and, when it has a
// body, a read deadline for the body. The read deadline is lifted once the
// body has been read: net/http keeps reading the connection while the
// handler runs, to notice a client that goes away, and a deadline expiring
// there would cancel the request of a handler that is only waiting.
func (s *server) setDeadlines(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if rc.SetReadDeadline(time.Now().Add(s.bodyTimeout)) == nil {
		r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
	}
}

// extendWrite moves the request's write deadline to wait plus writeSlack
// from now, for routes that wait on purpose.
func extendWrite(w http.ResponseWriter, wait time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + writeSlack))
}

// deadlineBody lifts the read deadline when the whole body has arrived.
// After any other error it stays: net/http reads what is left of a body
// before it answers, and that read must fail too, not wait for ever.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(func() { _ = b.rc.SetReadDeadline(time.Time{}) })
	}
	return n, err
}

// bodyTimedOut is the answer to a body that did not arrive in time.
func bodyTimedOut(d time.Duration) *huberr.Error {
	e := huberr.InvalidOperation("The request body did not arrive within %s.", d)
	e.Status = http.StatusRequestTimeout
	return e
}
