// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/service"
)

// hubState is what a restart must keep: identities and twins, as the
// service API returns them.
type hubState struct {
	Devices []*service.Device
	Twins   []*service.Twin
}

// twinJSON compares twin collections by meaning, not by byte layout.
var twinJSON = cmp.Transformer("TwinCollection", func(c service.TwinCollection) any {
	var v any
	if err := json.Unmarshal(c, &v); err != nil {
		return string(c)
	}
	return v
})

func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stop func(*emulatorProc, testing.TB)
	}{
		{name: "SIGTERM", stop: (*emulatorProc).stop},
		// SIGKILL right after the last acknowledgement: an ack means the
		// write is on disk, not queued in the process.
		{name: "SIGKILL", stop: (*emulatorProc).kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			first := startEmulator(t, procConfig{dataDir: dir})
			acked, deleted := writeState(t, first.serviceClient(t))
			tt.stop(first, t)

			second := startEmulator(t, procConfig{dataDir: dir})
			svc := second.serviceClient(t)
			got := readState(t, svc, acked)
			if diff := cmp.Diff(acked, got, twinJSON); diff != "" {
				t.Errorf("state after restart differs from the acknowledged writes (-acked +restarted):\n%s", diff)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := svc.GetDevice(ctx, deleted); !errors.Is(err, service.ErrNotFound) {
				t.Errorf("GetDevice(%s) deleted before the restart: got error %v, want 404 DeviceNotFound", deleted, err)
			}

			// The restarted hub goes on from the stored versions.
			last := acked.Twins[len(acked.Twins)-1]
			patch := &service.Twin{Properties: service.TwinProperties{Desired: service.TwinCollection(`{"afterRestart":true}`)}}
			tw, err := svc.UpdateTwin(ctx, last.DeviceID, patch, "")
			if err != nil {
				t.Fatalf("UpdateTwin after restart: %v", err)
			}
			if got, want := tw.Properties.Desired.Version(), last.Properties.Desired.Version()+1; got != want {
				t.Errorf("desired $version after restart: got %d, want %d", got, want)
			}
			second.stop(t)
		})
	}
}

// writeState creates devices concurrently, patches each twin, deletes one
// extra device, and returns what the hub acknowledged, sorted by device id,
// and the id of the deleted device.
func writeState(t *testing.T, svc *service.Client) (hubState, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 8
	state := hubState{Devices: make([]*service.Device, n), Twins: make([]*service.Twin, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("restart-%02d", i)
			d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: id})
			if err != nil {
				errs[i] = fmt.Errorf("CreateDevice(%s): %w", id, err)
				return
			}
			patch := &service.Twin{
				Tags: service.TwinCollection(fmt.Sprintf(`{"site":"b7","n":%d}`, i)),
				Properties: service.TwinProperties{
					Desired: service.TwinCollection(fmt.Sprintf(`{"fanSpeed":%d,"schedule":{"on":"07:00"}}`, i)),
				},
			}
			tw, err := svc.UpdateTwin(ctx, id, patch, "")
			if err != nil {
				errs[i] = fmt.Errorf("UpdateTwin(%s): %w", id, err)
				return
			}
			state.Devices[i], state.Twins[i] = d, tw
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	const gone = "restart-deleted"
	if _, err := svc.CreateDevice(ctx, &service.Device{DeviceID: gone}); err != nil {
		t.Fatalf("CreateDevice(%s): %v", gone, err)
	}
	if err := svc.DeleteDevice(ctx, gone, ""); err != nil {
		t.Fatalf("DeleteDevice(%s): %v", gone, err)
	}
	return state, gone
}

// readState reads back the devices and twins of want, and checks that the
// registry holds no others.
func readState(t *testing.T, svc *service.Client, want hubState) hubState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got hubState
	for _, d := range want.Devices {
		dev, err := svc.GetDevice(ctx, d.DeviceID)
		if err != nil {
			t.Fatalf("GetDevice(%s) after restart: %v", d.DeviceID, err)
		}
		tw, err := svc.GetTwin(ctx, d.DeviceID)
		if err != nil {
			t.Fatalf("GetTwin(%s) after restart: %v", d.DeviceID, err)
		}
		got.Devices = append(got.Devices, dev)
		got.Twins = append(got.Twins, tw)
	}
	list, err := svc.ListDevices(ctx, 0)
	if err != nil {
		t.Fatalf("ListDevices after restart: %v", err)
	}
	var ids []string
	for _, d := range list {
		ids = append(ids, d.DeviceID)
	}
	slices.Sort(ids)
	var wantIDs []string
	for _, d := range want.Devices {
		wantIDs = append(wantIDs, d.DeviceID)
	}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("registry after restart: got devices [%s], want [%s]", strings.Join(ids, " "), strings.Join(wantIDs, " "))
	}
	return got
}
