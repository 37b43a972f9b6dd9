// SPDX-License-Identifier: MIT

package main

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// serveMetrics serves the Prometheus metrics at /metrics on a loopback
// address (--metrics-addr), for a scraper on the same host that holds no
// SAS token. It returns a function that stops it.
func serveMetrics(addr string, h http.Handler) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }, ln.Addr().String(), nil
}

// isLoopback reports whether addr (host:port) names a loopback host.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (host == "localhost" || (ip != nil && ip.IsLoopback()))
}
