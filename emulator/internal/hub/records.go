// SPDX-License-Identifier: MIT

package hub

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/store"
	"github.com/iothubemulator/iothub/emulator/internal/twin"
)

// record is what the store holds per device or module: the identity, its
// twin, and counters the hub derives etags from. One key per identity keeps
// a write to either in one put. The twin is written first: queries read
// it in place (storedTwin), and then find its sections without skipping
// the rest.
type record struct {
	Twin    json.RawMessage `json:"twin"`
	Device  *Device         `json:"device,omitempty"`
	Module  *Module         `json:"module,omitempty"`
	ETagSeq int64           `json:"etagSeq"`
	ModelID string          `json:"modelId,omitempty"`

	// Automatic device management (configurations.go): the configurations
	// that target the twin and their status, the desired paths they set,
	// and an edge device's own modules content.
	Configs     map[string]string                     `json:"configs,omitempty"`
	Applied     map[string]appliedSetting             `json:"applied,omitempty"`
	EdgeContent map[string]map[string]json.RawMessage `json:"edgeContent,omitempty"`

	twinDoc *twin.Doc
}

func bucketFor(id Identity) store.Bucket {
	if id.ModuleID == "" {
		return store.Devices
	}
	return store.Modules
}

// loadRecord reads id's record, or returns nil when absent.
func loadRecord(tx *store.Tx, id Identity) (*record, error) {
	b := tx.Get(bucketFor(id), id.key())
	if b == nil {
		return nil, nil
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode record %s: %w", id, err)
	}
	return &r, nil
}

func (r *record) doc() (*twin.Doc, error) {
	if r.twinDoc == nil {
		d, err := twin.Unmarshal(r.Twin)
		if err != nil {
			return nil, fmt.Errorf("decode twin: %w", err)
		}
		r.twinDoc = d
	}
	return r.twinDoc, nil
}

func saveRecord(tx *store.Tx, id Identity, r *record) error {
	if r.twinDoc != nil {
		b, err := r.twinDoc.Marshal()
		if err != nil {
			return err
		}
		r.Twin = b
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(bucketFor(id), id.key(), b)
}

// nextGeneration returns a fresh generation id: the hub uses an opaque
// decimal string that changes when an id is deleted and re-created.
func nextGeneration(tx *store.Tx) (string, error) {
	n, err := tx.NextSequence(store.Meta)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(638000000000000000+n, 10), nil
}

// mustLoad reads id's record; a missing identity is the hub's not-found error.
func mustLoad(tx *store.Tx, id Identity) (*record, error) {
	r, err := loadRecord(tx, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound(tx, id)
	}
	return r, nil
}

// mustLoadTwin reads id's record and its twin document.
func mustLoadTwin(tx *store.Tx, id Identity) (*record, *twin.Doc, error) {
	r, err := mustLoad(tx, id)
	if err != nil {
		return nil, nil, err
	}
	d, err := r.doc()
	return r, d, err
}
