// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iothubemulator/iothub/internal/fleet"
	"github.com/iothubemulator/iothub/internal/sas"
	"github.com/iothubemulator/iothub/service"
)

// queryFigure: a query over N twins, 1% of which match, all pages,
// against a scan of the same database reading every value.
func queryFigure(ctx context.Context, c *config) ([]*figure, error) {
	dataDir := filepath.Join(c.dir, "query")
	e, err := startEmulator(c.emulator, dataDir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "registering %d twins...\n", c.twins)
	if err := createTwins(ctx, e.svc, c.twins); err != nil {
		e.kill()
		return nil, err
	}
	e.stop()
	snapshot := filepath.Join(c.dir, "query-snapshot.db")
	if err := copyFile(filepath.Join(dataDir, "iothub.db"), snapshot); err != nil {
		return nil, err
	}
	if e, err = startEmulator(c.emulator, dataDir); err != nil {
		return nil, err
	}
	defer e.stop()
	db, err := bolt.Open(snapshot, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	text := "SELECT * FROM devices WHERE tags.site = 'site-7'"
	f := &figure{Name: fmt.Sprintf("query over %d twins, 1%% match, all pages", c.twins), Unit: "ms", Base: "bbolt scan reading every value", Ratio: "base/emu", Aim: "≥ 0.33x"}
	want := c.twins / 100
	for round := range c.rounds + 1 {
		d, n, err := boltScan(db)
		if err != nil {
			return nil, err
		}
		if n < c.twins {
			return nil, fmt.Errorf("scan saw %d twins, want %d", n, c.twins)
		}
		start := time.Now()
		got, err := queryAll(ctx, e.svc, text, 100)
		q := time.Since(start)
		if err != nil {
			return nil, err
		}
		if got != want {
			return nil, fmt.Errorf("query returned %d rows, want %d", got, want)
		}
		if round == 0 {
			continue // warm-up: page cache and connections
		}
		f.Baseline = append(f.Baseline, ms(d))
		f.Emulator = append(f.Emulator, ms(q))
		f.Load = append(f.Load, loadAvg())
	}
	if c.profileDir != "" {
		profileWhile(ctx, e, filepath.Join(c.profileDir, "query.pprof"), func(ctx context.Context) {
			for ctx.Err() == nil {
				_, _ = queryAll(ctx, e.svc, text, 100)
			}
		})
	}
	return []*figure{f}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// createTwins registers n devices whose tags spread over 100 sites, four
// bulk requests at a time.
func createTwins(ctx context.Context, svc *service.Client, n int) error {
	ids := fleet.DeviceIDs("twin", n)
	const per = 5000
	sem := make(chan struct{}, 4)
	errs := make(chan error, n/per+1)
	var wg sync.WaitGroup
	for start := 0; start < n; start += per {
		part := ids[start:min(start+per, n)]
		sem <- struct{}{}
		wg.Add(1)
		go func(off int) {
			defer func() { <-sem; wg.Done() }()
			_, err := fleet.CreateDevices(ctx, svc, part, fleet.AuthSAS, "", func(i int) []byte { return twinTags(off + i) })
			errs <- err
		}(start)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// twinTags are the tags of twin i: a site (1 in 100 is site-7) and the
// kind of detail real fleets keep.
func twinTags(i int) []byte {
	return fmt.Appendf(nil, `{"site":"site-%d","building":"b-%d","floor":%d,"owner":"team-%d","serial":"SN-%08d","firmware":"1.%d.%d","location":{"lat":%.5f,"lon":%.5f},"labels":["prod","zone-%d"]}`,
		i%100, i%37, i%9, i%13, i, i%5, i%11, 47+float64(i%1000)/1000, 8+float64(i%777)/1000, i%4)
}

// queryAll walks every page of a query and returns the number of rows.
func queryAll(ctx context.Context, svc *service.Client, text string, pageSize int) (int, error) {
	q := svc.Query(text, pageSize)
	n := 0
	for q.HasMore() {
		page, err := q.NextPage(ctx)
		if err != nil {
			return n, err
		}
		n += len(page)
	}
	return n, nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// profileWhile records a 10-second CPU profile of the emulator while load
// runs.
func profileWhile(ctx context.Context, e *emulator, file string, load func(context.Context)) {
	ctx, cancel := context.WithTimeout(ctx, 11*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		load(ctx)
	}()
	if err := e.profile(ctx, 10*time.Second, file); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
	} else {
		fmt.Fprintln(os.Stderr, "profile written to", file)
	}
	cancel()
	<-done
}

// fleetFor connects the devices to an emulator.
func fleetFor(ctx context.Context, e *emulator, creds []fleet.Credential, opts fleet.Options) (*fleet.Fleet, error) {
	opts.HostName, opts.Addr, opts.TLS, opts.Devices = "localhost", e.mqttAddr, e.tlsConfig(), creds
	f, err := fleet.New(opts)
	if err != nil {
		return nil, err
	}
	if failed, err := f.Connect(ctx, nil); failed > 0 {
		f.Close()
		return nil, fmt.Errorf("%d devices did not connect: %w", failed, err)
	}
	return f, nil
}

// rate runs one closed-loop load for d and returns acknowledged operations
// per second.
func rate(ctx context.Context, f *fleet.Fleet, l fleet.Load, d time.Duration, reports bool) float64 {
	before := f.Stats()
	ctx, cancel := context.WithTimeout(ctx, d)
	f.Run(ctx, l)
	cancel()
	after := f.Stats()
	n := after.Acked - before.Acked
	if reports {
		n = after.Reported - before.Reported
	}
	return float64(n) / after.At.Sub(before.At).Seconds()
}

// writesFigure: durable reported patches of 64 devices, each waiting for
// its 204, against bbolt Batch writes of the same records, batch size 64.
func writesFigure(ctx context.Context, c *config) ([]*figure, error) {
	const devices = 64
	dataDir := filepath.Join(c.dir, "writes")
	e, err := startEmulator(c.emulator, dataDir)
	if err != nil {
		return nil, err
	}
	ids := fleet.DeviceIDs("writer", devices)
	creds, err := fleet.CreateDevices(ctx, e.svc, ids, fleet.AuthSAS, "", func(i int) []byte { return twinTags(i) })
	if err != nil {
		e.kill()
		return nil, err
	}
	f, err := fleetFor(ctx, e, creds, fleet.Options{})
	if err != nil {
		e.kill()
		return nil, err
	}
	// One patch each, so the stored records are those the load rewrites.
	rate(ctx, f, fleet.Load{ReportRate: -1}, time.Second, true)
	f.Close()
	e.stop()
	records, err := readRecords(filepath.Join(dataDir, "iothub.db"), devices)
	if err != nil {
		return nil, err
	}
	if e, err = startEmulator(c.emulator, dataDir); err != nil {
		return nil, err
	}
	defer e.stop()
	if f, err = fleetFor(ctx, e, creds, fleet.Options{}); err != nil {
		return nil, err
	}
	defer f.Close()
	// The transport alone: bare mochi answering each patch with a 204 on
	// the same connection, storing nothing.
	m, mAddr, err := startMochi(c, dataDir)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	fm, err := fleetFor(ctx, &emulator{mqttAddr: mAddr, pool: e.pool}, creds, fleet.Options{})
	if err != nil {
		return nil, err
	}
	defer fm.Close()
	fig := &figure{Name: "durable reported patches/s, 64 devices over MQTT, each waiting for its 204", Unit: "/s",
		Base: "bbolt Batch of the same records, batch size 64, same disk", Ratio: "emu/base", Aim: "≥ 0.5x",
		Note: fmt.Sprintf("records %d–%d bytes", minLen(records), maxLen(records))}
	ceiling := &figure{Name: "the same patches against the transport alone", Unit: "/s",
		Base: "bare mochi answering each patch with a 204, storing nothing", Ratio: "emu/base", Aim: "(the ceiling of the figure above)"}
	batchFile := filepath.Join(c.dir, "batch.db")
	for round := range c.rounds + 1 {
		b, err := boltBatch(batchFile, records, c.seconds)
		if err != nil {
			return nil, err
		}
		r := rate(ctx, f, fleet.Load{ReportRate: -1}, c.seconds, true)
		t := rate(ctx, fm, fleet.Load{ReportRate: -1}, c.seconds, true)
		if round == 0 {
			continue
		}
		fig.Baseline = append(fig.Baseline, b)
		fig.Emulator = append(fig.Emulator, r)
		fig.Load = append(fig.Load, loadAvg())
		ceiling.Baseline = append(ceiling.Baseline, t)
		ceiling.Emulator = append(ceiling.Emulator, r)
		ceiling.Load = append(ceiling.Load, loadAvg())
	}
	if st := f.Stats(); st.Errors > 0 {
		fig.Note += fmt.Sprintf("; %d errors", st.Errors)
	}
	if st := fm.Stats(); st.Errors > 0 {
		ceiling.Note = fmt.Sprintf("%d errors", st.Errors)
	}
	if c.profileDir != "" {
		profileWhile(ctx, e, filepath.Join(c.profileDir, "writes.pprof"), func(ctx context.Context) { f.Run(ctx, fleet.Load{ReportRate: -1}) })
	}
	return []*figure{fig, ceiling}, nil
}

func minLen(bs [][]byte) int {
	return len(slices.MinFunc(bs, func(a, b []byte) int { return len(a) - len(b) }))
}

func maxLen(bs [][]byte) int {
	return len(slices.MaxFunc(bs, func(a, b []byte) int { return len(a) - len(b) }))
}

// readRecords returns the first n values of the devices bucket.
func readRecords(path string, n int) ([][]byte, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var out [][]byte
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("devices")).ForEach(func(_, v []byte) error {
			if len(out) < n {
				out = append(out, bytes.Clone(v))
			}
			return nil
		})
	})
	if err == nil && len(out) < n {
		err = fmt.Errorf("only %d records", len(out))
	}
	return out, err
}

// startMochi runs bare mochi with the emulator's certificate.
func startMochi(c *config, certDir string) (*proc, string, error) {
	p, err := start(c.self, []string{"serve-mochi", "-certs", certDir}, "ready")
	if err != nil {
		return nil, "", err
	}
	return p, p.field("ready"), nil
}

// telemetryFigure: QoS 1 telemetry of 64 devices, each waiting for its
// PUBACK, against bare mochi.
func telemetryFigure(ctx context.Context, c *config) ([]*figure, error) {
	const devices = 64
	dataDir := filepath.Join(c.dir, "telemetry")
	e, err := startEmulator(c.emulator, dataDir)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	creds, err := fleet.CreateDevices(ctx, e.svc, fleet.DeviceIDs("sender", devices), fleet.AuthSAS, "", nil)
	if err != nil {
		return nil, err
	}
	m, mAddr, err := startMochi(c, dataDir)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	fe, err := fleetFor(ctx, e, creds, fleet.Options{})
	if err != nil {
		return nil, err
	}
	defer fe.Close()
	fm, err := fleetFor(ctx, &emulator{mqttAddr: mAddr, pool: e.pool}, creds, fleet.Options{})
	if err != nil {
		return nil, err
	}
	defer fm.Close()
	fig := &figure{Name: "telemetry QoS 1 msgs/s, 64 devices, 256-byte messages", Unit: "/s", Base: "bare mochi QoS 1 publish", Ratio: "emu/base", Aim: "≥ 0.5x"}
	load := fleet.Load{TelemetryRate: -1, MessageSize: 256, Properties: "type=bench"}
	for round := range c.rounds + 1 {
		b := rate(ctx, fm, load, c.seconds, false)
		r := rate(ctx, fe, load, c.seconds, false)
		if round == 0 {
			continue
		}
		fig.Baseline = append(fig.Baseline, b)
		fig.Emulator = append(fig.Emulator, r)
		fig.Load = append(fig.Load, loadAvg())
	}
	if st := fe.Stats(); st.Errors > 0 {
		fig.Note = fmt.Sprintf("%d errors", st.Errors)
	}
	if c.profileDir != "" {
		profileWhile(ctx, e, filepath.Join(c.profileDir, "telemetry.pprof"), func(ctx context.Context) { fe.Run(ctx, load) })
	}
	return []*figure{fig}, nil
}

// settledRSS forces a collection and waits for resident memory to stop
// falling (the runtime returns freed pages in the background).
func settledRSS(pid int, gc func()) int64 {
	if gc != nil {
		gc()
	}
	last, _ := rssKiB(pid)
	for range 20 {
		time.Sleep(time.Second)
		now, _ := rssKiB(pid)
		if now >= last-last/200 {
			return now
		}
		last = now
	}
	return last
}

// memoryFigure: resident memory per idle TLS MQTT device, and what is
// given back once they disconnect; bare mochi's for comparison.
func memoryFigure(ctx context.Context, c *config) ([]*figure, error) {
	dataDir := filepath.Join(c.dir, "memory")
	e, err := startEmulator(c.emulator, dataDir)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	creds, err := fleet.CreateDevices(ctx, e.svc, fleet.DeviceIDs("idle", c.idle), fleet.AuthSAS, "", nil)
	if err != nil {
		return nil, err
	}
	m, mAddr, err := startMochi(c, dataDir)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	fig := &figure{Name: fmt.Sprintf("idle TLS MQTT device, resident memory (%d devices)", c.idle), Unit: "KiB", Base: "bare mochi", Ratio: "emu/base", Aim: "≤ 25 KiB"}
	var back []float64
	var parts, left []memParts
	for round := range max(c.rounds/2, 1) {
		// gc is nil for bare mochi: collected by a signal, and without
		// the emulator's profiler to break its memory down.
		perDevice := func(target *emulator, gc func()) (float64, float64, error) {
			collect := gc
			if collect == nil {
				collect = func() { _ = syscall.Kill(target.pid(), syscall.SIGUSR1); time.Sleep(100 * time.Millisecond) }
			}
			before := settledRSS(target.pid(), collect)
			var mBefore memParts
			if gc != nil {
				mBefore = target.memParts()
				if c.profileDir != "" && round == 0 {
					target.heapProfile(filepath.Join(c.profileDir, "memory-heap-before.pprof"))
				}
			}
			f, err := fleetFor(ctx, target, creds, fleet.Options{})
			if err != nil {
				return 0, 0, err
			}
			time.Sleep(3 * time.Second)
			during := settledRSS(target.pid(), collect)
			if gc != nil {
				parts = append(parts, target.memParts().perDevice(mBefore, c.idle))
				if c.profileDir != "" && round == 0 {
					target.heapProfile(filepath.Join(c.profileDir, "memory-heap.pprof"))
				}
			}
			f.Close()
			if gc != nil {
				// The collection that settles must come after the server
				// has let go of the devices, or it sets the runtime's goal,
				// and with it the memory kept, by a heap still in use.
				target.waitGoroutines(mBefore.goroutines, time.Minute)
			}
			time.Sleep(3 * time.Second)
			after := settledRSS(target.pid(), collect)
			if gc != nil {
				left = append(left, target.memParts().perDevice(mBefore, c.idle))
				if c.profileDir != "" && round == 0 {
					// Compare with memory-heap-before.pprof (pprof -base).
					target.heapProfile(filepath.Join(c.profileDir, "memory-heap-after.pprof"))
				}
			}
			returned := 0.0
			if during > before {
				returned = float64(during-after) / float64(during-before)
			}
			return float64(during-before) / float64(c.idle), returned, nil
		}
		b, _, err := perDevice(&emulator{proc: m, mqttAddr: mAddr, pool: e.pool}, nil)
		if err != nil {
			return nil, err
		}
		r, given, err := perDevice(e, e.forceGC)
		if err != nil {
			return nil, err
		}
		fig.Baseline = append(fig.Baseline, b)
		fig.Emulator = append(fig.Emulator, r)
		fig.Load = append(fig.Load, loadAvg())
		back = append(back, given*100)
	}
	fig.Note = "given back after disconnect: " + span(back) + "% of the growth; per device " + memPartsSpan(parts) + "; left per device after disconnect: " + memPartsSpan(left)
	return []*figure{fig}, nil
}

// memParts is where the emulator's memory is: bytes of heap spans in use,
// of the live objects in them, and of goroutine stacks (as its runtime
// says), the goroutine count, and
// the process's anonymous resident bytes; per device once divided
// (perDevice). Resident memory beyond heap and stacks is mostly free heap
// the runtime keeps up to its next collection's goal.
type memParts struct {
	heap, live, stacks, goroutines, anon float64
}

// memParts reads the runtime's statistics through the profiler, after the
// collection settledRSS forced, and the process's anonymous memory.
func (e *emulator) memParts() memParts {
	var m memParts
	get := func(path string) string {
		resp, err := http.Get("http://" + e.pprofAddr + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	txt := get("/debug/pprof/heap?debug=1")
	for l := range strings.SplitSeq(txt, "\n") {
		if v, ok := strings.CutPrefix(l, "# HeapInuse = "); ok {
			m.heap, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(l, "# HeapAlloc = "); ok {
			m.live, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(l, "# Stack = "); ok { // in use / from the OS
			v, _, _ = strings.Cut(v, " ")
			m.stacks, _ = strconv.ParseFloat(v, 64)
		}
	}
	m.goroutines = e.goroutines()
	m.anon = float64(anonKiB(e.pid())) * 1024
	return m
}

// goroutines is the emulator's goroutine count; 0 if unknown.
func (e *emulator) goroutines() float64 {
	resp, err := http.Get("http://" + e.pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	first, _ := bufio.NewReader(resp.Body).ReadString('\n')
	v, _ := strings.CutPrefix(strings.TrimSpace(first), "goroutine profile: total ")
	n, _ := strconv.ParseFloat(v, 64)
	return n
}

// waitGoroutines waits, at most for d, until the emulator runs no more
// goroutines than n and a few.
func (e *emulator) waitGoroutines(n float64, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if e.goroutines() <= n+10 {
			return
		}
	}
}

func (m memParts) perDevice(before memParts, n int) memParts {
	d := float64(n)
	return memParts{(m.heap - before.heap) / d, (m.live - before.live) / d, (m.stacks - before.stacks) / d, (m.goroutines - before.goroutines) / d, (m.anon - before.anon) / d}
}

func memPartsSpan(ps []memParts) string {
	var heap, live, stacks, gs, anon []float64
	for _, p := range ps {
		heap, live, stacks, gs, anon = append(heap, p.heap), append(live, p.live), append(stacks, p.stacks), append(gs, p.goroutines), append(anon, p.anon)
	}
	return "heap spans " + span(heap) + " B (live objects " + span(live) + " B), stacks " + span(stacks) + " B, anonymous " + span(anon) + " B, goroutines " + span(gs)
}

// anonKiB is the process's anonymous resident memory (heap, stacks,
// runtime metadata), without the mapped database file.
func anonKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Anonymous:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// heapProfile saves the emulator's heap profile into file.
func (e *emulator) heapProfile(file string) {
	resp, err := http.Get("http://" + e.pprofAddr + "/debug/pprof/heap")
	if err != nil {
		fmt.Fprintln(os.Stderr, "heap profile:", err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "heap profile:", err)
		return
	}
	fmt.Fprintln(os.Stderr, "heap profile written to", file)
}

// methodsFigure: direct method round trips to random devices of a
// connected fleet, at concurrency 1 and 64, against a bare HTTPS POST plus
// a bare mochi request and reply, each baseline in a process of its own.
func methodsFigure(ctx context.Context, c *config) ([]*figure, error) {
	n := c.methodDevs
	dataDir := filepath.Join(c.dir, "methods")
	e, err := startEmulator(c.emulator, dataDir)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	ids := fleet.DeviceIDs("callee", n)
	creds, err := fleet.CreateDevices(ctx, e.svc, ids, fleet.AuthSAS, "", nil)
	if err != nil {
		return nil, err
	}
	m, mAddr, err := startMochi(c, dataDir)
	if err != nil {
		return nil, err
	}
	defer m.stop()
	h, err := start(c.self, []string{"serve-https", "-certs", dataDir}, "ready")
	if err != nil {
		return nil, err
	}
	defer h.stop()
	hAddr := h.field("ready")
	fe, err := fleetFor(ctx, e, creds, fleet.Options{})
	if err != nil {
		return nil, err
	}
	defer fe.Close()
	fm, err := fleetFor(ctx, &emulator{mqttAddr: mAddr, pool: e.pool}, creds, fleet.Options{C2D: true, Echo: true})
	if err != nil {
		return nil, err
	}
	defer fm.Close()

	token, err := sas.NewToken("localhost", "iothubowner", ownerKey(e.connStr), time.Now().Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	body := []byte(`{"methodName":"bench","payload":{"x":1},"responseTimeoutInSeconds":30}`)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: e.tlsConfig(), MaxIdleConnsPerHost: 128}}
	post := func(ctx context.Context, url string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
		}
		var r struct{ Status int }
		if err := json.Unmarshal(b, &r); err != nil || r.Status != 200 {
			return fmt.Errorf("%s: answer %s", url, b)
		}
		return nil
	}
	var reqs []*fleet.Requester
	for range 64 {
		r, err := fleet.DialRequester(ctx, mAddr, &tls.Config{RootCAs: e.pool, ServerName: "localhost"})
		if err != nil {
			return nil, err
		}
		defer r.Close()
		reqs = append(reqs, r)
	}
	var figs []*figure
	for _, conc := range []int{1, 64} {
		total := 1000
		fig := &figure{Name: fmt.Sprintf("direct method round trip p50, c=%d, %d devices", conc, n), Unit: "ms",
			Base: "bare HTTPS POST p50 + bare mochi request/reply p50", Ratio: "emu/base", Aim: "≤ 1.5x"}
		var httpsP, mochiP []float64
		for round := range c.rounds + 1 {
			hp, err := p50(ctx, conc, total, func(ctx context.Context, w int) error {
				return post(ctx, "https://"+hAddr+"/twins/x/methods?api-version=2021-04-12")
			})
			if err != nil {
				return nil, err
			}
			mp, err := p50(ctx, conc, total, func(ctx context.Context, w int) error {
				return reqs[w].Request(ctx, ids[rand.IntN(n)], body)
			})
			if err != nil {
				return nil, err
			}
			ep, err := p50(ctx, conc, total, func(ctx context.Context, w int) error {
				return post(ctx, "https://"+e.httpsAddr+"/twins/"+ids[rand.IntN(n)]+"/methods?api-version=2021-04-12")
			})
			if err != nil {
				return nil, err
			}
			if round == 0 {
				continue
			}
			httpsP, mochiP = append(httpsP, hp), append(mochiP, mp)
			fig.Baseline = append(fig.Baseline, hp+mp)
			fig.Emulator = append(fig.Emulator, ep)
			fig.Load = append(fig.Load, loadAvg())
		}
		fig.Note = "HTTPS " + span(httpsP) + " ms + mochi " + span(mochiP) + " ms"
		figs = append(figs, fig)
	}
	if c.profileDir != "" {
		profileWhile(ctx, e, filepath.Join(c.profileDir, "methods.pprof"), func(ctx context.Context) {
			_, _ = p50(ctx, 64, 1<<30, func(ctx context.Context, w int) error {
				return post(ctx, "https://"+e.httpsAddr+"/twins/"+ids[rand.IntN(n)]+"/methods?api-version=2021-04-12")
			})
		})
	}
	return figs, nil
}

// p50 runs total calls from conc workers and returns the median latency in
// milliseconds.
func p50(ctx context.Context, conc, total int, call func(ctx context.Context, worker int) error) (float64, error) {
	var mu sync.Mutex
	var lat []float64
	var firstErr error
	var wg sync.WaitGroup
	per := total / conc
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if ctx.Err() != nil {
					return
				}
				start := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := call(cctx, w)
				cancel()
				d := ms(time.Since(start))
				mu.Lock()
				if err != nil && firstErr == nil && ctx.Err() == nil {
					firstErr = err
				}
				lat = append(lat, d)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if len(lat) == 0 {
		return 0, errors.New("no calls")
	}
	return median(lat), nil
}

// ownerKey is the SharedAccessKey of a connection string.
func ownerKey(cs string) string {
	p, err := sas.ParseConnectionString(cs)
	if err != nil {
		return ""
	}
	return p.SharedAccessKey
}
