// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"
)

// The baselines: what the emulator is built on, measured in the same run.

// serveMochi runs bare mochi (allow-all hook, TLS with the emulator's
// certificate) until SIGTERM: the baseline of telemetry and of request and
// reply. It prints "ready ADDR".
func serveMochi(args []string) error {
	fs := flag.NewFlagSet("serve-mochi", flag.ExitOnError)
	certDir := fs.String("certs", "", "directory with server.pem and server-key.pem")
	_ = fs.Parse(args)
	cert, err := tls.LoadX509KeyPair(filepath.Join(*certDir, "server.pem"), filepath.Join(*certDir, "server-key.pem"))
	if err != nil {
		return err
	}
	caps := mqtt.NewDefaultServerCapabilities()
	// As the emulator configures it: a small queue per client.
	caps.MaximumClientWritesPending = 64
	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.DiscardHandler), SysTopicResendInterval: 86400})
	if err := s.AddHook(new(allowAll), nil); err != nil {
		return err
	}
	if err := s.AddHook(new(twinEcho), nil); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	ln := listeners.NewTCP(listeners.Config{ID: "tls", Address: addr, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err := s.AddListener(ln); err != nil {
		return err
	}
	if err := s.Serve(); err != nil {
		return err
	}
	fmt.Println("ready", addr)
	// SIGUSR1 collects garbage, as the
	// emulator's profiler does for the memory figure: both sides of it
	// are then measured after a collection.
	gc := make(chan os.Signal, 1)
	signal.Notify(gc, syscall.SIGUSR1)
	go func() {
		for range gc {
			runtime.GC()
		}
	}()
	waitSignal()
	return s.Close()
}

// serveHTTPS answers every POST with its body wrapped as a method result,
// as the hub's method route would with an instant device: the HTTPS half of
// the direct-method baseline. It prints "ready ADDR".
func serveHTTPS(args []string) error {
	fs := flag.NewFlagSet("serve-https", flag.ExitOnError)
	certDir := fs.String("certs", "", "directory with server.pem and server-key.pem")
	_ = fs.Parse(args)
	cert, err := tls.LoadX509KeyPair(filepath.Join(*certDir, "server.pem"), filepath.Join(*certDir, "server-key.pem"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			var b bytes.Buffer
			b.WriteString(`{"status":200,"payload":`)
			b.Write(body)
			b.WriteString(`}`)
			_, _ = w.Write(b.Bytes())
		}),
	}
	go srv.ServeTLS(ln, "", "")
	fmt.Println("ready", ln.Addr().String())
	waitSignal()
	return srv.Close()
}

// allowAll lets every client connect, publish and subscribe: mochi's own
// allow-all hook, without the dependency its package brings.
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }

func (allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// twinEcho answers each reported-properties patch on the connection it
// came from with the hub's 204, storing nothing: the transport's share of
// a reported patch, the ceiling of the durable-writes figure.
type twinEcho struct{ mqtt.HookBase }

func (twinEcho) ID() string { return "twin-echo" }

func (twinEcho) Provides(b byte) bool { return b == mqtt.OnPublish }

func (twinEcho) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	const prefix = "$iothub/twin/PATCH/properties/reported/?$rid="
	if rid, ok := strings.CutPrefix(pk.TopicName, prefix); ok {
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName:   "$iothub/twin/res/204/?$rid=" + rid + "&$version=2",
		})
	}
	return pk, nil
}

func waitSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	<-ch
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// boltScan reads every value of the devices bucket of a copy of the
// emulator's database, touching each word: the storage-speed bound of a
// query.
func boltScan(db *bolt.DB) (time.Duration, int, error) {
	start := time.Now()
	n := 0
	var sink uint64
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("devices"))
		if b == nil {
			return fmt.Errorf("no devices bucket")
		}
		return b.ForEach(func(_, v []byte) error {
			n++
			for len(v) >= 8 {
				sink += binary.LittleEndian.Uint64(v)
				v = v[8:]
			}
			for _, c := range v {
				sink += uint64(c)
			}
			return nil
		})
	})
	sinkHole.Store(sink)
	return time.Since(start), n, err
}

var sinkHole atomic.Uint64

// boltBatch writes records with bbolt's Batch from one goroutine per
// record, batch size workers, for d: the durable-write bound of reported
// patches. It returns writes per second.
func boltBatch(path string, records [][]byte, d time.Duration) (float64, error) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.MaxBatchSize = len(records)
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("devices")); return err }); err != nil {
		return 0, err
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	var firstErr atomic.Value
	for i, rec := range records {
		key := []byte(fmt.Sprintf("bench-%06d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := db.Batch(func(tx *bolt.Tx) error { return tx.Bucket([]byte("devices")).Put(key, rec) }); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}
