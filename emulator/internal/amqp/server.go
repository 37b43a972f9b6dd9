// SPDX-License-Identifier: MIT

package amqp

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Serve accepts connections on l and serves each with ServeConn until ctx
// is done or l fails; then it closes l, closes every connection (with
// amqp:connection:forced) and returns once they have all ended.
func Serve(ctx context.Context, l net.Listener, cfg *Config) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		nc, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ServeConn(ctx, nc, cfg)
		}()
	}
}
