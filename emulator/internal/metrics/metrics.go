// SPDX-License-Identifier: MIT

// Package metrics holds the emulator's Prometheus metrics. The hub, the
// store and the adapters report to one *Metrics; a nil *Metrics accepts
// every report and records nothing, so that code reports without checking
// and tests that need no metrics pass none.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the emulator's set of metrics, in a registry of its own (not
// Prometheus's global one, so that several emulators in one test process
// keep theirs apart).
type Metrics struct {
	reg *prometheus.Registry

	connected    *prometheus.GaugeVec
	messagesIn   *prometheus.CounterVec
	messagesOut  *prometheus.CounterVec
	methods      *prometheus.HistogramVec
	twinOps      *prometheus.CounterVec
	commits      prometheus.Histogram
	commitBatch  prometheus.Histogram
	queries      prometheus.Histogram
	refusedConns prometheus.CounterFunc
}

// New makes the metrics. refused, when not nil, reports the connections
// refused at the open-file limit.
func New(refused func() float64) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.connected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "iothub", Name: "connected_devices",
		Help: "Devices and modules connected now, by transport (mqtt, mqtt-ws, amqp, amqp-ws, amqp-plain).",
	}, []string{"transport"})
	m.messagesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "iothub", Name: "messages_in_total",
		Help: "Device-to-cloud messages recorded, by transport.",
	}, []string{"transport"})
	m.messagesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "iothub", Name: "messages_out_total",
		Help: "Hub-to-device sends: cloud-to-device messages (c2d), desired-property notifications (desired) and method requests (method).",
	}, []string{"kind"})
	m.methods = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "iothub", Name: "method_call_seconds",
		Help:    "Direct method calls from the request to the device's answer or the error, by result (the device's status class, or the hub's error code).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5 ms to 131 s
	}, []string{"result"})
	m.twinOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "iothub", Name: "twin_operations_total",
		Help: "Twin reads and writes, by operation (get, device_get, update, patch_reported) and result (ok or error).",
	}, []string{"op", "result"})
	m.commits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "iothub", Subsystem: "store", Name: "commit_seconds",
		Help:    "Durable commits (bbolt write transaction and fsync) of grouped writes.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 11), // 0.1 ms to 5.9 s
	})
	m.commitBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "iothub", Subsystem: "store", Name: "commit_batch_size",
		Help:    "Writes committed together in one transaction.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	m.queries = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "iothub", Name: "query_seconds",
		Help:    "IoT Hub queries, one observation per page served.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	})
	m.reg.MustRegister(m.connected, m.messagesIn, m.messagesOut, m.methods, m.twinOps, m.commits, m.commitBatch, m.queries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if refused != nil {
		m.refusedConns = prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "iothub", Name: "refused_connections_total",
			Help: "Connections refused at the open-file limit.",
		}, refused)
		m.reg.MustRegister(m.refusedConns)
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Connected counts a connection of the transport that began (+1) or ended (-1).
func (m *Metrics) Connected(transport string, delta int) {
	if m != nil && transport != "" {
		m.connected.WithLabelValues(transport).Add(float64(delta))
	}
}

// MessagesIn counts n device-to-cloud messages recorded.
func (m *Metrics) MessagesIn(transport string, n int) {
	if m != nil {
		if transport == "" {
			transport = "unknown"
		}
		m.messagesIn.WithLabelValues(transport).Add(float64(n))
	}
}

// MessageOut counts a hub-to-device send of the kind (c2d, desired, method).
func (m *Metrics) MessageOut(kind string) {
	if m != nil {
		m.messagesOut.WithLabelValues(kind).Inc()
	}
}

// MethodCall observes a direct method call that ended with result.
func (m *Metrics) MethodCall(result string, d time.Duration) {
	if m != nil {
		m.methods.WithLabelValues(result).Observe(d.Seconds())
	}
}

// TwinOp counts a twin operation.
func (m *Metrics) TwinOp(op string, err error) {
	if m != nil {
		result := "ok"
		if err != nil {
			result = "error"
		}
		m.twinOps.WithLabelValues(op, result).Inc()
	}
}

// Commit observes a store commit of n writes.
func (m *Metrics) Commit(n int, d time.Duration) {
	if m != nil {
		m.commits.Observe(d.Seconds())
		m.commitBatch.Observe(float64(n))
	}
}

// Query observes a query page.
func (m *Metrics) Query(d time.Duration) {
	if m != nil {
		m.queries.Observe(d.Seconds())
	}
}
