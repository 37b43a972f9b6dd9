// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

const benchTwins = 100_000

var benchBucket = []byte("twins")

// benchDB is one bbolt file of benchTwins service-view twins, written once
// per test binary run and shared by the benchmarks so that they read the
// same bytes.
var benchDB struct {
	once    sync.Once
	dir     string
	path    string
	bytes   int // total JSON bytes
	matches int // twins matching benchWhere
	err     error
}

// benchWhere filters on a tags path and a reported path; about 10% of the
// twins are in building B7 and 40% of those report fanSpeed > 2.
const benchWhere = "tags.site.building = 'B7' AND properties.reported.fanSpeed > 2"

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDB.dir != "" {
		os.RemoveAll(benchDB.dir)
	}
	os.Exit(code)
}

// benchTwin renders twin i compactly, in the member order of §5.1, with
// $metadata on both sections: about 1.3 KB, like a small real twin.
func benchTwin(buf []byte, i int) []byte {
	ts := "2024-05-02T09:11:30.5000000Z"
	building := "B" + strconv.Itoa(i%10)
	fan := i / 10 % 5
	return fmt.Appendf(buf, `{"deviceId":"dev%06d","etag":"AAAAAAAAAAM=","deviceEtag":"NjQ1MzIxMDg5",`+
		`"status":"enabled","statusUpdateTime":"0001-01-01T00:00:00Z","connectionState":"Disconnected",`+
		`"lastActivityTime":"2024-05-02T09:14:03.1234567Z","cloudToDeviceMessageCount":0,"authenticationType":"sas",`+
		`"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"modelId":"","version":5,`+
		`"tags":{"site":{"building":"%s","floor":%d},"env":"prod","owner":"team-%d"},`+
		`"properties":{"desired":{"fanSpeed":%d,"telemetryConfig":{"sendFrequencyInSecs":300,"configId":"db00ebf5-eeeb-42be-86a1-458cccb69e57"},`+
		`"$metadata":{"$lastUpdated":"%[9]s","$lastUpdatedVersion":2,"fanSpeed":{"$lastUpdated":"%[9]s","$lastUpdatedVersion":2},`+
		`"telemetryConfig":{"$lastUpdated":"%[9]s","$lastUpdatedVersion":2,"sendFrequencyInSecs":{"$lastUpdated":"%[9]s","$lastUpdatedVersion":2},`+
		`"configId":{"$lastUpdated":"%[9]s","$lastUpdatedVersion":2}}},"$version":2},`+
		`"reported":{"fanSpeed":%[6]d,"fw":"1.%[7]d.0","temp":%[8]d.5,"connectivity":"wifi",`+
		`"telemetryConfig":{"sendFrequencyInSecs":300,"status":"Success"},`+
		`"$metadata":{"$lastUpdated":"%[9]s","fanSpeed":{"$lastUpdated":"%[9]s"},"fw":{"$lastUpdated":"%[9]s"},`+
		`"temp":{"$lastUpdated":"%[9]s"},"connectivity":{"$lastUpdated":"%[9]s"},`+
		`"telemetryConfig":{"$lastUpdated":"%[9]s","sendFrequencyInSecs":{"$lastUpdated":"%[9]s"},"status":{"$lastUpdated":"%[9]s"}}},"$version":3}},`+
		`"capabilities":{"iotEdge":false}}`,
		i, building, i%7, i%13, fan, fan, i%4, 15+i%20, ts)
}

func benchFile(b *testing.B) string {
	b.Helper()
	benchDB.once.Do(func() {
		benchDB.dir, benchDB.err = os.MkdirTemp("", "query-bench-")
		if benchDB.err != nil {
			return
		}
		benchDB.path = filepath.Join(benchDB.dir, "twins.db")
		db, err := bolt.Open(benchDB.path, 0o600, &bolt.Options{NoSync: true})
		if err != nil {
			benchDB.err = err
			return
		}
		defer db.Close()
		cond, err := ParseCondition(benchWhere)
		if err != nil {
			benchDB.err = err
			return
		}
		benchDB.err = db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucket(benchBucket)
			if err != nil {
				return err
			}
			bk.FillPercent = 0.9 // keys arrive in order
			for i := range benchTwins {
				// bbolt keeps a reference to the value until commit, so
				// every twin needs its own buffer.
				buf := benchTwin(nil, i)
				if cond.Match(MapDocument(nil)) {
					return fmt.Errorf("condition matches an empty document")
				}
				if cond.Match(RawDocument(buf)) {
					benchDB.matches++
				}
				benchDB.bytes += len(buf)
				if err := bk.Put(fmt.Appendf(nil, "dev%06d", i), buf); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if benchDB.err != nil {
		b.Fatalf("writing the benchmark database: %v", benchDB.err)
	}
	return benchDB.path
}

func openBench(b *testing.B) *bolt.DB {
	b.Helper()
	db, err := bolt.Open(benchFile(b), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func reportTwins(b *testing.B) {
	b.ReportMetric(float64(benchTwins)*float64(b.N)/b.Elapsed().Seconds(), "twins/s")
	b.SetBytes(int64(benchDB.bytes))
}

// BenchmarkBoltScan100k is the baseline: one read transaction, a cursor over
// every twin, summing value lengths.
func BenchmarkBoltScan100k(b *testing.B) {
	db := openBench(b)
	b.ResetTimer()
	for range b.N {
		err := db.View(func(tx *bolt.Tx) error {
			total := 0
			c := tx.Bucket(benchBucket).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				total += len(v)
			}
			if total != benchDB.bytes {
				return fmt.Errorf("scanned %d bytes, want %d", total, benchDB.bytes)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportTwins(b)
}

func benchQuery(b *testing.B, text string) {
	db := openBench(b)
	q := mustParse(b, text)
	b.ResetTimer()
	for range b.N {
		err := db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(benchBucket).Cursor()
			items, err := q.Execute(func(yield func([]byte) bool) {
				for k, v := c.First(); k != nil; k, v = c.Next() {
					if !yield(v) {
						return
					}
				}
			})
			if err != nil {
				return err
			}
			if len(items) != benchDB.matches {
				return fmt.Errorf("query returned %d twins, want %d", len(items), benchDB.matches)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportTwins(b)
}

// BenchmarkQueryWhere100k runs SELECT * with a WHERE on a tags path and a
// reported path over the raw twins of one read transaction. The tags test
// comes first, so most twins are rejected after scanning up to tags.
func BenchmarkQueryWhere100k(b *testing.B) {
	benchQuery(b, "SELECT * FROM devices WHERE "+benchWhere)
}

// BenchmarkQueryWhereReportedFirst100k puts the reported test first, so
// every twin is scanned up to properties.reported: the worst case for a
// two-path condition.
func BenchmarkQueryWhereReportedFirst100k(b *testing.B) {
	benchQuery(b, "SELECT * FROM devices WHERE properties.reported.fanSpeed > 2 AND tags.site.building = 'B7'")
}

// BenchmarkBoltReadAll100k is a second baseline that reads every byte of
// every twin (searching for a byte JSON text never holds), showing what
// merely bringing the twins into the CPU costs.
func BenchmarkBoltReadAll100k(b *testing.B) {
	db := openBench(b)
	b.ResetTimer()
	for range b.N {
		err := db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(benchBucket).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if bytes.IndexByte(v, 0) >= 0 {
					return fmt.Errorf("twin %s holds a NUL byte", k)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportTwins(b)
}

// BenchmarkRawLookup measures one path lookup in one twin that stays in the
// CPU cache: the scanner's cost without memory effects.
func BenchmarkRawLookup(b *testing.B) {
	doc := RawDocument(benchTwin(nil, 7))
	for _, path := range []string{"deviceId", "tags.site.building", "properties.reported.fanSpeed", "capabilities.iotEdge"} {
		b.Run(path, func(b *testing.B) {
			p := testPath(b, path)
			b.SetBytes(int64(len(doc)))
			for range b.N {
				if _, ok := doc.Lookup(p); !ok {
					b.Fatalf("%s not found", path)
				}
			}
		})
	}
}
