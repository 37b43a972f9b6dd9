// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// TestModifyRecordRetriesOnConcurrentWrite: a write that lands between a
// twin update's read and its commit (one that does not take the
// identity's lock, as recording connection times does) is not lost: the
// update runs again on the new record.
func TestModifyRecordRetriesOnConcurrentWrite(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d1"})
	id := Identity{DeviceID: "d1"}
	at := regNow.Add(-time.Hour)
	calls := 0
	h.beforeCommit = func(Identity) {
		calls++
		if calls == 1 {
			h.saveConnTimes(id, at, at)
		}
	}
	v, err := h.PatchReported(id, []byte(`{"fw":"2.0"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	h.beforeCommit = nil
	// The reported update, the connection times' update, and the reported
	// update again after its commit found the record changed.
	if calls != 3 {
		t.Errorf("got %d commits attempted, want 3", calls)
	}
	if v != 2 {
		t.Errorf("got reported version %d, want 2: the retried patch counts once", v)
	}
	var r *record
	if err := h.db.View(func(tx *store.Tx) error { var err error; r, err = loadRecord(tx, id); return err }); err != nil {
		t.Fatal(err)
	}
	if !r.Device.LastActivityTime.Equal(at) {
		t.Errorf("the concurrent write was lost: last activity %v, want %v", r.Device.LastActivityTime, at)
	}
	d, err := r.doc()
	if err != nil {
		t.Fatal(err)
	}
	_, reported := d.DeviceSections()
	if !strings.Contains(string(reported), `"fw":"2.0"`) {
		t.Errorf("the patch was lost: reported %s", reported)
	}
}

// TestModifyRecordUnchangedWritesNothing: a model id already recorded is
// not written again.
func TestModifyRecordUnchangedWritesNothing(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d1"})
	id := Identity{DeviceID: "d1"}
	h.setModelID(id, "dtmi:a;1")
	commits := 0
	h.beforeCommit = func(Identity) { commits++ }
	h.setModelID(id, "dtmi:a;1")
	if commits != 0 {
		t.Errorf("an unchanged model id was committed %d times", commits)
	}
	tw, err := h.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(tw); !strings.Contains(string(b), `"modelId":"dtmi:a;1"`) {
		t.Errorf("twin %s lacks the model id", b)
	}
}

// TestConcurrentTwinWritesLoseNothing: reported patches, service desired
// patches and connection-time updates (which take no identity lock) race on
// one device; every write is in the stored twin afterwards and each
// acknowledged patch counted once in the versions.
func TestConcurrentTwinWritesLoseNothing(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d1"})
	id := Identity{DeviceID: "d1"}
	const n = 40
	errs := make(chan error, 3*n)
	done := make(chan struct{})
	for i := range n {
		go func() {
			_, err := h.PatchReported(id, []byte(`{"r`+strconv.Itoa(i)+`":`+strconv.Itoa(i)+`}`), 0)
			errs <- err
		}()
		go func() {
			_, err := h.UpdateTwin(context.Background(), id, []byte(`{"properties":{"desired":{"d`+strconv.Itoa(i)+`":true}}}`), "", false)
			errs <- err
		}()
		go func() {
			at := regNow.Add(time.Duration(i) * time.Second)
			h.saveConnTimes(id, at, at)
			errs <- nil
		}()
	}
	go func() {
		for range 3 * n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		close(done)
	}()
	<-done
	tw, err := h.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(tw)
	var got struct {
		Properties struct {
			Desired  map[string]any `json:"desired"`
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, ok := got.Properties.Reported["r"+strconv.Itoa(i)]; !ok {
			t.Errorf("reported r%d lost", i)
		}
		if _, ok := got.Properties.Desired["d"+strconv.Itoa(i)]; !ok {
			t.Errorf("desired d%d lost", i)
		}
	}
	if v := got.Properties.Reported["$version"]; v != float64(n+1) {
		t.Errorf("reported $version %v, want %d: one per patch", v, n+1)
	}
	if v := got.Properties.Desired["$version"]; v != float64(n+1) {
		t.Errorf("desired $version %v, want %d: one per patch", v, n+1)
	}
}

// TestSplitTwin: the twin of a stored record is found whatever its strings
// hold, and the record is its prefix, its twin and the rest; a record that
// does not start with its twin is refused, not misread.
func TestSplitTwin(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d1"})
	id := Identity{DeviceID: "d1"}
	tags := `{"properties":{"desired":{"a":"}]\"{[\\","b":["}",{"c":"\"\\\\"}]}},"tags":{"t":"{\"twin\":1}"}}`
	if _, err := h.UpdateTwin(context.Background(), id, []byte(tags), "", false); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	var r *record
	if err := h.db.View(func(tx *store.Tx) error {
		stored = tx.Get(bucketFor(id), id.key())
		var err error
		r, err = loadRecord(tx, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	raw, rest, ok := splitTwin(stored)
	if !ok {
		t.Fatalf("no twin found in %s", stored)
	}
	if string(raw) != string(r.Twin) {
		t.Fatalf("got twin %s, want %s", raw, r.Twin)
	}
	if twinPrefix+string(raw)+string(rest) != string(stored) {
		t.Fatal("prefix, twin and rest do not make the record")
	}
	for _, bad := range []string{`{"device":{},"twin":{}}`, `{"twin":{"a":"}"`, `{"twin":`, `{"twin":[]}`} {
		if _, _, ok := splitTwin([]byte(bad)); ok {
			t.Errorf("splitTwin accepted %s", bad)
		}
	}
	// A reported patch through the splice keeps the rest of the record.
	if _, err := h.PatchReported(id, []byte(`{"fw":"}"}`), 0); err != nil {
		t.Fatal(err)
	}
	var after *record
	if err := h.db.View(func(tx *store.Tx) error { var err error; after, err = loadRecord(tx, id); return err }); err != nil {
		t.Fatal(err)
	}
	if after.Device.GenerationID != r.Device.GenerationID || after.Device.ETag != r.Device.ETag || after.ETagSeq != r.ETagSeq {
		t.Errorf("the device part changed: %+v, was %+v", after.Device, r.Device)
	}
	d, err := after.doc()
	if err != nil {
		t.Fatal(err)
	}
	if _, reported := d.DeviceSections(); !strings.Contains(string(reported), `"fw":"}"`) {
		t.Errorf("reported %s lacks the patch", reported)
	}
}
