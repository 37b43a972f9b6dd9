// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iothubemulator/iothub/service"
)

// proc is a child process: the emulator or a baseline server.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    []string
	ready  chan struct{}
	exited chan struct{}
}

// start runs bin with args; readyLine is a prefix of the stdout line that
// says the process is serving.
func start(bin string, args []string, readyLine string, extraFiles ...*os.File) (*proc, error) {
	p := &proc{cmd: exec.Command(bin, args...), ready: make(chan struct{}), exited: make(chan struct{})}
	p.cmd.Env = hermeticEnv()
	p.cmd.Stderr = os.Stderr
	p.cmd.ExtraFiles = extraFiles
	// Children die with the harness, however it ends.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			p.mu.Unlock()
			if strings.HasPrefix(strings.TrimSpace(sc.Text()), readyLine) {
				// The banner's other lines follow at once.
				go func() { time.Sleep(200 * time.Millisecond); once.Do(func() { close(p.ready) }) }()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-p.ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before it was ready:\n%s", bin, strings.Join(p.lines(), "\n"))
	case <-time.After(60 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s not ready after 60s", bin)
	}
}

func (p *proc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.out...)
}

// field returns the rest of the first stdout line starting with prefix.
func (p *proc) field(prefix string) string {
	lines := p.lines()
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, prefix) {
			v := strings.TrimSpace(strings.TrimPrefix(l, prefix))
			if v == "" && i+1 < len(lines) {
				return strings.TrimSpace(lines[i+1])
			}
			return v
		}
	}
	return ""
}

// stop ends the process with SIGTERM and waits.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// rssKiB is the process's resident set size.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func hermeticEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IOTHUB_") {
			env = append(env, kv)
		}
	}
	return env
}

// emulator is a running emulator process and what its banner says.
type emulator struct {
	*proc
	dataDir   string
	mqttAddr  string
	httpsAddr string
	connStr   string
	pprofAddr string
	pool      *x509.CertPool
	svc       *service.Client // the owner policy's client
}

func startEmulator(bin, dataDir string, extra ...string) (*emulator, error) {
	// No AMQP: nothing here uses it, and its fixed ports would keep two
	// runs from sharing the machine.
	args := append([]string{"--hostname", "localhost", "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--amqp-addr", "off", "--amqp-plain-addr", "off",
		"--data-dir", dataDir, "--log-level", "warn", "--pprof-addr", "127.0.0.1:0"}, extra...)
	p, err := start(bin, args, "IoT Hub emulator ready")
	if err != nil {
		return nil, err
	}
	e := &emulator{proc: p, dataDir: dataDir, mqttAddr: p.field("MQTT (TLS):"), httpsAddr: p.field("HTTPS + MQTT/WSS:"),
		connStr:   p.field("service connection string (iothubowner):"),
		pprofAddr: strings.TrimSuffix(strings.TrimPrefix(p.field("profiler:"), "http://"), "/debug/pprof/")}
	if e.pool, err = loadPool(filepath.Join(dataDir, "ca.pem")); err != nil {
		p.kill()
		return nil, err
	}
	if e.svc, err = e.service(); err != nil {
		p.kill()
		return nil, err
	}
	return e, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no certificate", file)
	}
	return pool, nil
}

func (e *emulator) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

func (e *emulator) service() (*service.Client, error) {
	return service.NewFromConnectionString(e.connStr, service.WithoutRetries(),
		service.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: e.tlsConfig(), MaxIdleConnsPerHost: 128}}))
}

// forceGC makes the emulator collect garbage (through its profiler), so
// that resident memory reflects live data.
func (e *emulator) forceGC() {
	resp, err := http.Get("http://" + e.pprofAddr + "/debug/pprof/heap?gc=1")
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// profile fetches a CPU profile of d into file.
func (e *emulator) profile(ctx context.Context, d time.Duration, file string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", e.pprofAddr, int(d.Seconds())), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
