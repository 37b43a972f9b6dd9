// SPDX-License-Identifier: MIT

package emulator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/service"
)

// TestFailNextCreateJob: a fault on OpCreateJob refuses the next job as the
// hub would, and nothing is stored; the job after it is accepted.
func TestFailNextCreateJob(t *testing.T) {
	srv := emulator.RunT(t, func(o *emulator.Options) { o.MaxConcurrentJobs = 5 })
	c, err := service.NewFromConnectionString(srv.ConnectionString(), service.WithRootCAs(srv.CAPool()), service.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv.FailNext(emulator.OpCreateJob, 1, emulator.ErrThrottled)
	later := service.JobSchedule{JobID: "j1", QueryCondition: "*", StartTime: time.Now().Add(time.Hour)}
	if _, err := c.ScheduleTwinUpdate(ctx, later, &service.Twin{}); !errors.Is(err, service.ErrThrottled) {
		t.Fatalf("first schedule: got %v, want the injected 429", err)
	}
	if _, err := c.GetJob(ctx, "j1"); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("refused job stored: %v", err)
	}
	if j, err := c.ScheduleTwinUpdate(ctx, later, &service.Twin{}); err != nil || j.Status != service.JobQueued {
		t.Fatalf("second schedule: %+v, %v", j, err)
	}
}
