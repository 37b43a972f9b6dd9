// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCanonicalImportMode(t *testing.T) {
	tests := []struct{ in, want string }{
		{"create", ImportCreate},
		{"Create", ImportCreate},
		{"Update", ImportUpdate},
		{"UpdateIfMatchETag", ImportUpdateIfMatchETag},
		{"updateifmatchetag", ImportUpdateIfMatchETag},
		{"Delete", ImportDelete},
		{"DeleteIfMatchETag", ImportDeleteIfMatchETag},
		{"UpdateTwin", ImportUpdateTwin},
		{"updateTwinIfMatchETag", ImportUpdateTwinIfMatchETag},
		{"explode", "explode"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := canonicalImportMode(tc.in); got != tc.want {
			t.Errorf("canonicalImportMode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBulkImportLimits(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	var many []ImportDevice
	for i := 0; i < 101; i++ {
		many = append(many, ImportDevice{ID: "d" + strconv.Itoa(i), ImportMode: ImportCreate})
	}
	tests := []struct {
		name  string
		items []ImportDevice
		code  int
	}{
		{"empty", nil, 400004},
		{"101 items", many, 413002},
		{"same device twice", []ImportDevice{{ID: "a", ImportMode: "create"}, {ID: "a", ImportMode: "delete"}}, 400011},
		{"same module twice", []ImportDevice{{ID: "a", ModuleID: "m", ImportMode: "create"}, {ID: "a", ModuleID: "m", ImportMode: "create"}}, 400011},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.BulkImport(ctx, tc.items)
			wantCode(t, "BulkImport", err, tc.code)
		})
	}
	t.Run("100 items", func(t *testing.T) {
		res, err := h.BulkImport(ctx, many[:100])
		if err != nil || !res.IsSuccessful {
			t.Fatalf("got %+v, %v, want success", res, err)
		}
	})
	t.Run("a device and its module", func(t *testing.T) {
		res, err := h.BulkImport(ctx, []ImportDevice{{ID: "pair", ImportMode: "create"}, {ID: "pair", ModuleID: "m", ImportMode: "create"}})
		if err != nil || !res.IsSuccessful {
			t.Fatalf("got %+v, %v, want success", res, err)
		}
	})
}

func TestBulkImportResult(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "exists"})
	res, err := h.BulkImport(ctx, []ImportDevice{
		{ID: "new", ImportMode: "Create"},
		{ID: "exists", ImportMode: "create"},
		{ID: "exists", ModuleID: "m", ImportMode: "deleteIfMatchETag"},
	})
	if err != nil {
		t.Fatalf("BulkImport: %v", err)
	}
	for i := range res.Errors {
		res.Errors[i].ErrorStatus = ""
	}
	want := &BulkResult{
		IsSuccessful: false,
		Errors: []BulkError{
			{DeviceID: "exists", ErrorCode: "DeviceAlreadyExists", Operation: "create"},
			{DeviceID: "exists", ModuleID: "m", ErrorCode: "ArgumentInvalid", Operation: "deleteIfMatchETag"},
		},
		Warnings: []BulkError{},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if _, err := h.GetDevice(ctx, "new"); err != nil {
		t.Errorf("the successful item was not applied: %v", err)
	}
}
