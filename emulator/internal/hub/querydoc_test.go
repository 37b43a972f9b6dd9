// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/query"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// queryFleet builds twins of every shape a query may look at: tags and
// properties of each JSON type, odd names, disabled and edge devices, a
// scope, a model id, a connected device, queued C2D messages and modules.
func queryFleet(t *testing.T) *Hub {
	t.Helper()
	h := newRegHub(t)
	ctx := context.Background()
	reason := "maintenance"
	edgeScope := ""
	for i := range 12 {
		d := Device{DeviceID: fmt.Sprintf("q%02d", i)}
		switch i % 4 {
		case 1:
			d.Status, d.StatusReason = "disabled", &reason
		case 2:
			d.Capabilities.IotEdge = true
		}
		if i == 5 {
			d.DeviceScope = edgeScope // a child of q02
		}
		if out := regDevice(t, h, d); i == 2 {
			edgeScope = out.DeviceScope
		}
		id := Identity{DeviceID: d.DeviceID}
		tags := fmt.Sprintf(`{"tags":{"site":"s%d","floor":%d,"ok":%t,"nil":null,"list":[%d,"x",{"a":1}],"nested":{"deep":{"v":%d}},"odd-name":"y","html":"<&>\u2028"}}`,
			i%3, i, i%2 == 0, i, i*10)
		if _, err := h.UpdateTwin(ctx, id, []byte(tags), "*", false); err != nil {
			t.Fatal(err)
		}
		if _, err := h.UpdateTwin(ctx, id, fmt.Appendf(nil, `{"properties":{"desired":{"rate":%d,"mode":"m%d"}}}`, i, i%2), "*", false); err != nil {
			t.Fatal(err)
		}
		if i%3 != 0 {
			if _, err := h.PatchReported(id, fmt.Appendf(nil, `{"fw":"1.%d","temp":%d.5,"arr":[1,2,3]}`, i, 20+i), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.setModelID(Identity{DeviceID: "q03"}, "dtmi:com:example:Thermostat;1")
	h.Connect(Identity{DeviceID: "q04"}, &regSession{}, ConnectInfo{})
	if _, err := h.SendC2D(ctx, "q06", &C2DMessage{Body: []byte("hi")}, 0); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"q01", "q02"} {
		for _, mod := range []string{"mA", "mB"} {
			if _, err := h.PutModule(ctx, &Module{DeviceID: dev, ModuleID: mod}, ""); err != nil {
				t.Fatal(err)
			}
			id := Identity{DeviceID: dev, ModuleID: mod}
			if _, err := h.UpdateTwin(ctx, id, []byte(`{"tags":{"m":"`+mod+`"}}`), "*", false); err != nil {
				t.Fatal(err)
			}
		}
	}
	return h
}

// renderedResult is what a query returned before it read stored records:
// the engine over the rendered service view of every twin.
func renderedResult(t *testing.T, h *Hub, q *query.Query) []json.RawMessage {
	t.Helper()
	bucket := store.Devices
	if q.Collection() == query.CollectionModules {
		bucket = store.Modules
	}
	var docs [][]byte
	err := h.db.View(func(tx *store.Tx) error {
		parents := &parentCache{}
		return tx.ForEach(bucket, "", "", func(k string, v []byte) error {
			d := &storedTwin{h: h, tx: tx, module: bucket == store.Modules, parents: parents}
			d.reset([]byte(k), v)
			b, err := d.render()
			docs = append(docs, b)
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	items, err := q.Execute(slices.Values(docs))
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func decodeAll(t *testing.T, items []json.RawMessage) []any {
	t.Helper()
	out := []any{}
	for _, it := range items {
		var v any
		if err := json.Unmarshal(it, &v); err != nil {
			t.Fatalf("item %s: %v", it, err)
		}
		out = append(out, v)
	}
	return out
}

// allPages walks every page of a query.
func allPages(t *testing.T, h *Hub, text string, size int) []json.RawMessage {
	t.Helper()
	var items []json.RawMessage
	tok := ""
	for range 1000 {
		p, err := h.Query(context.Background(), text, size, tok)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		items = append(items, p.Items...)
		if tok = p.Continuation; tok == "" {
			return items
		}
	}
	t.Fatal("paging does not end")
	return nil
}

var storedQuerySeeds = []string{
	"SELECT * FROM devices",
	"SELECT * FROM devices WHERE tags.site = 's1'",
	"SELECT * FROM devices WHERE tags.floor > 3 AND properties.reported.temp < 30",
	"SELECT deviceId, tags.site, properties.desired.rate, properties.reported.fw FROM devices",
	"SELECT * FROM devices WHERE status = 'disabled' OR capabilities.iotEdge = true",
	"SELECT deviceId, status, statusReason, connectionState, cloudToDeviceMessageCount, modelId, deviceScope FROM devices",
	"SELECT deviceId, version, etag, deviceEtag, authenticationType, x509Thumbprint.primaryThumbprint FROM devices",
	"SELECT * FROM devices WHERE connectionState = 'Connected'",
	"SELECT * FROM devices WHERE cloudToDeviceMessageCount > 0",
	"SELECT * FROM devices WHERE modelId = 'dtmi:com:example:Thermostat;1'",
	"SELECT * FROM devices WHERE IS_DEFINED(properties.reported.fw)",
	"SELECT * FROM devices WHERE NOT IS_DEFINED(properties.reported.fw)",
	"SELECT tags, properties FROM devices WHERE deviceId IN ['q01', 'q07']",
	"SELECT properties.desired, properties.reported FROM devices WHERE deviceId = 'q02'",
	"SELECT tags.list[2].a AS a, tags.nested.deep.v AS v, tags.nil AS n, tags.ok FROM devices",
	"SELECT properties.reported.$metadata.fw.$lastUpdated AS at, properties.desired.$version AS v FROM devices",
	"SELECT tags.site, COUNT() AS n, SUM(tags.floor) AS s, AVG(properties.reported.temp), MIN(deviceId), MAX(version) FROM devices GROUP BY tags.site",
	"SELECT COUNT() FROM devices WHERE properties.reported.arr[1] = 2",
	"SELECT TOP 3 * FROM devices WHERE tags.ok = true",
	"SELECT TOP 2 deviceId FROM devices",
	"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'q1') AND LENGTH(tags.site) = 2",
	"SELECT * FROM devices WHERE STARTSWITH(deviceScope, 'ms-azure-iot-edge://q02') OR IS_DEFINED(parentScopes)",
	"SELECT deviceId, deviceScope, parentScopes, capabilities FROM devices",
	"SELECT * FROM devices WHERE lastActivityTime > '2000-01-01' AND statusUpdateTime != ''",
	"SELECT * FROM devices.modules",
	"SELECT deviceId, moduleId, status, tags.m, connectionState FROM devices.modules WHERE moduleId = 'mB'",
	"SELECT * FROM devices.modules WHERE status = 'disabled'",
	"SELECT moduleId, COUNT() FROM devices.modules GROUP BY moduleId",
	"SELECT * FROM devices WHERE moduleId = 'mA'",
	"SELECT * FROM devices WHERE properties.reported = properties.desired OR tags = null",
	"SELECT * FROM devices WHERE configurations.x.status = 'Applied'",
}

// FuzzStoredTwinQuery: a query over the stored records returns exactly
// what the engine returns over the rendered views of the same twins, all
// pages together.
func FuzzStoredTwinQuery(f *testing.F) {
	for _, s := range storedQuerySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		q, err := query.Parse(text)
		if err != nil || q.Collection() == query.CollectionJobs {
			return
		}
		h := queryFleet(t)
		want := decodeAll(t, renderedResult(t, h, q))
		for _, size := range []int{MaxPageSize, 2} {
			got := decodeAll(t, allPages(t, h, text, size))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%s, pages of %d: stored and rendered results differ (-rendered +stored):\n%s", text, size, diff)
			}
		}
	})
}

// TestQueryCacheBoundedInBytes: paged results are kept within the byte
// budget, whatever the number of queries.
func TestQueryCacheBoundedInBytes(t *testing.T) {
	var c queryCache
	big := &queryResult{items: []json.RawMessage{make([]byte, maxQueryCacheBytes/5)}}
	for i := range 12 {
		c.put(big, fmt.Sprint(i), regNow)
		if c.bytes > maxQueryCacheBytes {
			t.Fatalf("after %d results the cache holds %d bytes, over its %d", i+1, c.bytes, maxQueryCacheBytes)
		}
	}
	if len(c.entries) != 4 {
		t.Errorf("got %d entries of a fifth of the budget each, want 4", len(c.entries))
	}
	huge := &queryResult{items: []json.RawMessage{make([]byte, maxQueryCacheBytes/3)}}
	if id := c.put(huge, "huge", regNow); id != "" {
		t.Errorf("a result of a third of the budget was kept")
	}
	var keys queryResult
	for i := range 100000 {
		keys.keys = append(keys.keys, fmt.Sprintf("device-%06d", i))
	}
	if size := keys.size(); size > 5<<20 {
		t.Errorf("the keys of 100,000 twins cost %d bytes, want a few MB", size)
	}
}
